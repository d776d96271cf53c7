"""Readability for keyboard users and low vision: a visible focus ring on every
push button, and secondary ("grey") text that reaches WCAG AA contrast (4.5:1)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPalette, QPen
from PySide6.QtWidgets import QApplication, QProxyStyle, QStyle, QStyleOption, QWidget

#: WCAG 2.x AA for normal text; a little margin so rounding never lands below it.
AA_CONTRAST = 4.5
_TARGET = 4.7
#: The focus ring's width in device-independent pixels.
RING_WIDTH = 2


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def luminance(color: QColor) -> float:
    """WCAG relative luminance of ``color`` (alpha ignored)."""
    r, g, b = (_linear(c) for c in (color.redF(), color.greenF(), color.blueF()))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def over(color: QColor, background: QColor) -> QColor:
    """``color`` as painted on an opaque ``background`` (Qt 6's grey is translucent black)."""
    return _mix(background, color, color.alphaF())


def contrast_ratio(a: QColor, b: QColor) -> float:
    """WCAG contrast of text colour ``a`` on background ``b`` (``a``'s alpha applied)."""
    la, lb = sorted((luminance(over(a, b)), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    """``a`` moved ``t`` (0..1) of the way to ``b``."""
    return QColor.fromRgbF(
        a.redF() + (b.redF() - a.redF()) * t,
        a.greenF() + (b.greenF() - a.greenF()) * t,
        a.blueF() + (b.blueF() - a.blueF()) * t,
    )


def readable_secondary(
    palette: QPalette, group: QPalette.ColorGroup = QPalette.ColorGroup.Active
) -> QColor:
    """The palette's secondary text colour (PlaceholderText), moved toward the normal text
    colour just enough to reach AA contrast on both the window and the base background."""
    window = palette.color(group, QPalette.ColorRole.Window)
    grey = over(palette.color(group, QPalette.ColorRole.PlaceholderText), window)
    text = over(palette.color(group, QPalette.ColorRole.WindowText), window)
    backgrounds = (window, palette.color(group, QPalette.ColorRole.Base))
    for step in range(21):
        color = _mix(grey, text, step / 20)
        if min(contrast_ratio(color, bg) for bg in backgrounds) >= _TARGET:
            return color
    return text


def make_secondary_readable(widget: QWidget) -> None:
    """Give ``widget`` (and its children) a PlaceholderText colour that reaches AA."""
    palette = widget.palette()
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        palette.setColor(
            group, QPalette.ColorRole.PlaceholderText, readable_secondary(palette, group)
        )
    widget.setPalette(palette)


class FocusRingStyle(QProxyStyle):
    """The platform style plus a 2 px ring in the highlight colour around a focused push
    button (Fusion's own focus cue on buttons is a barely visible tint)."""

    def drawControl(
        self,
        element: QStyle.ControlElement,
        option: QStyleOption,
        painter: QPainter,
        widget: QWidget | None = None,
    ) -> None:
        super().drawControl(element, option, painter, widget)
        if (
            element == QStyle.ControlElement.CE_PushButton
            and option.state & QStyle.StateFlag.State_HasFocus
            and option.state & QStyle.StateFlag.State_Enabled
        ):
            painter.save()
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            pen = QPen(option.palette.color(QPalette.ColorRole.Highlight), RING_WIDTH)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            half = RING_WIDTH / 2
            rect = option.rect.toRectF().adjusted(half, half, -half, -half)
            painter.drawRoundedRect(rect, 3, 3)
            painter.restore()


def install(app: QApplication | None = None) -> None:
    """Use :class:`FocusRingStyle` for the whole application (idempotent)."""
    app = app or QApplication.instance()  # type: ignore[assignment]
    if app is None or isinstance(app.style(), FocusRingStyle):
        return
    app.setStyle(FocusRingStyle(app.style().name()))
    palette = app.palette()
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        palette.setColor(
            group, QPalette.ColorRole.PlaceholderText, readable_secondary(palette, group)
        )
    app.setPalette(palette)
