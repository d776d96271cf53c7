"""The approval dialog: shows exactly what would be signed; Deny is the default.

The dialog is the product's security boundary against a same-user program that answers the
prompt itself (tests/gui/test_attacks.py attacks it for real). Hardening:

- Approve is disarmed until the dialog has been the active, unobscured window for
  ``arming_delay`` (>= 1 s, a precise timer) and says so; it is disarmed again whenever the
  dialog loses activation or another window covers it (the dialog then raises itself),
  whenever a key other than Tab/Space/Return/Escape/modifiers is typed into it (someone
  typing elsewhere when it took the focus), and when the keyboard or pointer mapping or the
  input devices change. While disarmed it is disabled, so Tab cannot even reach it.
- Approve has no mnemonic, is never the default/auto-default button, ignores shortcut
  events; Return, Enter and Escape deny.
- Approve acts only while a real mouse release on it (after a press on it while armed), or a
  Space release while it has focus that it got from Tab or a click, is being handled, and
  only if the :class:`~gui_approver.ui.guard.InputGuard` vouches for that exact press and
  release (on X11: not XTEST, not XSendEvent, pointer not warped there). ``clicked()`` from
  anywhere else (accessibility, ``click()``, ``animateClick()``, shortcuts) is ignored; its
  accessible has no actions (:mod:`gui_approver.ui.a11y`).
- Input the guard does not vouch for (XTEST: on-screen keyboards, voice control, remote
  desktop, software KVMs) still works everywhere else: Deny, Escape, "View changes…". On
  Approve it is refused and the dialog says so; a Tab from it never lands on Approve (focus
  goes to Deny instead), and a click from it on Approve moves the focus to Deny, so a
  program cannot leave Approve focused for the user's next Space.
- Where the guard cannot tell (X11 without XInput2, unknown platforms) Approve stays
  disabled and the dialog says why: refuse, never guess.
- Every untrusted string is shown as plain text.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QFocusEvent,
    QFont,
    QHideEvent,
    QInputEvent,
    QKeyEvent,
    QMouseEvent,
    QPaintEvent,
    QPalette,
    QShowEvent,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui_approver.core.approval import Action, ApprovalRequest
from gui_approver.core.arming import Arm, ArmingPolicy
from gui_approver.review.history import INTEGRITY_NOTE
from gui_approver.review.request import Candidate, RequestReview, shown
from gui_approver.review.requester import owner_changes
from gui_approver.review.text import escape_text, human_size
from gui_approver.ui import style
from gui_approver.ui.guard import POINTER_MOVED_BY_SOFTWARE, InputGuard, default_guard

log = logging.getLogger(__name__)

#: Shown when input the guard does not vouch for lands on Approve.
SOFTWARE_INPUT_NOTE = (
    "Approve ignored that: that input came from software, not from your mouse or keyboard, "
    "so it cannot approve. Deny and Escape work with any input."
)
WARPED_POINTER_NOTE = (
    "Approve ignored that click: the pointer was moved onto it by software, not by your "
    "mouse. Move the mouse onto Approve and click again."
)

OWNERS_NOTE = (
    "Cargo does not tell gui-approver who is being added or removed, or whether this is only "
    "a listing of the owners. Approve only if you just ran `cargo owner` yourself."
)


def _plain(text: str, *, mono: bool = False, selectable: bool = True) -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if mono:
        f = QFont("monospace")
        f.setStyleHint(QFont.StyleHint.TypeWriter)
        label.setFont(f)
    return label


def registry_name(approval: ApprovalRequest) -> str:
    """The registry's name as the user knows it: the name of the stored key, which the
    service found by the index URL. The name in the request is the requester's choice and
    is shown only escaped (no control, bidi or zero-width character survives)."""
    if approval.key is not None:
        return escape_text(approval.key.registry, 200)
    return escape_text(approval.request.registry.label(), 200)


def _registry_row(approval: ApprovalRequest) -> str:
    name = registry_name(approval)
    claimed = approval.request.registry.name
    if approval.key is not None and claimed is not None and claimed != approval.key.registry:
        name += f"  (the request calls it {elide_middle(escape_text(claimed, 200), 60)})"
    elif approval.key is None and claimed is None:
        name = "(unnamed)"
    return name


def _heading(approval: ApprovalRequest) -> str:
    where = elide_middle(registry_name(approval), 60)
    if approval.action is Action.LOGOUT:
        if approval.bearer is not None:
            return f"Delete the bearer token for registry {where}?"
        return f"Delete the key for registry {where}?"
    if approval.action is Action.LOGIN:
        return f"cargo login for registry {where}?"
    fields = shown(approval.request)
    if approval.bearer is not None and fields.op == "read":
        return f"Hand the bearer token of {where} to cargo for a read?"
    name = escape_text(fields.name, 200) if fields.name else ""
    vers = escape_text(fields.vers, 200) if fields.vers else ""
    what = f"{name} {vers}" if name and vers else name
    verbs = {
        "publish": f"Publish {what} to {where}?",
        "yank": f"Yank {what} on {where}?",
        "unyank": f"Unyank {what} on {where}?",
        "owners": f"Change the owners of {what} on {where}?",
    }
    return verbs.get(fields.op, f"Sign a token for this {fields.op}?")


#: The one line the dialog shows for a registry that takes a bearer token.
BEARER_LINE = "This registry takes a bearer token: approving hands cargo the token itself."


def _intro(approval: ApprovalRequest) -> str:
    if approval.action is Action.LOGOUT:
        what = "bearer token" if approval.bearer is not None else "signing key"
        return (
            f"cargo logout asked gui-approver to delete this registry's {what}. "
            f"Approving will {approval.detail or 'delete it'}."
        )
    if approval.action is Action.LOGIN:
        return (
            f"A program sent a `cargo login` request. Approving will {approval.detail}. "
            "Approve only if you just ran cargo login yourself: a credential stored "
            "here is one gui-approver will use for this registry."
        )
    if approval.bearer is not None:
        text = BEARER_LINE
        if shown(approval.request).op == "read":
            text += (
                " This registry requires a token even to read, and this token can also "
                "publish: approve only if you are running cargo on it now."
            )
        return text
    return (
        "A program asked gui-approver to sign a registry token for exactly this request. "
        "Approve only if you started it yourself and every field is what you expect."
    )


def elide_middle(text: str, limit: int = 120) -> str:
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return text[:half] + "…" + text[-half:]


def format_cksum(cksum: str) -> str:
    """Groups of 8 hex digits, two lines of 32, so a person can compare them."""
    groups = [cksum[i : i + 8] for i in range(0, len(cksum), 8)]
    return " ".join(groups[:4]) + "\n" + " ".join(groups[4:])


def _requester_text(review: RequestReview) -> str:
    """ "cargo publish in ~/src/foo, started from bash in xterm" plus how the pid is known."""
    r = review.requester
    text = elide_middle(r.summary, 240)
    if r.pid is not None:
        source = {"kernel": "verified by the kernel", "self-reported": "self-reported"}.get(
            r.pid_source, r.pid_source
        )
        text += f"\n(bridge pid {r.pid}, {source})"
    return text


class ChangesWindow(QDialog):
    """The unified diffs since the last approved version: read-only, plain text."""

    closed = Signal()

    def __init__(self, review: RequestReview, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("changesWindow")
        self.setModal(False)
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        req = review.request
        name, vers = shown(req).name, shown(req).vers
        prev = review.previous.vers if review.previous is not None else "?"
        self.setWindowTitle(
            f"gui-approver: changes in {elide_middle(name or '?', 60)} "
            f"{elide_middle(vers or '?', 30)} since {elide_middle(prev, 30)}"
        )
        layout = QVBoxLayout(self)
        summary = review.changes.summary() if review.changes is not None else ""
        layout.addWidget(_plain(elide_middle(summary, 300)))
        self.text = QPlainTextEdit()
        self.text.setObjectName("diffText")
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        f = QFont("monospace")
        f.setStyleHint(QFont.StyleHint.TypeWriter)
        self.text.setFont(f)
        parts = []
        for path, diff in review.diffs:
            binary = " [binary: not shown]" if diff.startswith("Binary files ") else ""
            parts.append(f"=== {elide_middle(path, 200)}{binary} ===\n{diff.rstrip()}\n")
        self.text.setPlainText("\n".join(parts) or "(no diffs)")
        colour_diff(self.text)
        layout.addWidget(self.text, 1)
        close = QPushButton("Close")
        close.setAutoDefault(False)
        close.clicked.connect(self.close)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(close)
        layout.addLayout(row)
        self.resize(820, 560)

    def hideEvent(self, e: QHideEvent) -> None:
        super().hideEvent(e)
        self.closed.emit()

    def place_beside(self, dialog: QWidget) -> None:
        """Beside ``dialog`` (right, else left), never over its buttons: a window over the
        dialog disarms Approve."""
        screen = dialog.screen()
        if screen is None:
            return
        avail = screen.availableGeometry()
        frame = dialog.frameGeometry()
        gap = 8
        right_room = avail.right() - frame.right() - gap
        left_room = frame.left() - avail.left() - gap
        height = min(self.height(), avail.height())
        top = max(avail.top(), min(frame.top(), avail.bottom() - height))
        if max(right_room, left_room) >= 360:
            width = min(self.width(), max(right_room, left_room))
            x = frame.right() + gap if right_room >= left_room else frame.left() - gap - width
            self.setGeometry(x, top, width, height)
            return
        # No room at either side: above the dialog's buttons, as wide as the screen allows.
        buttons_top = dialog.mapToGlobal(dialog.rect().bottomLeft()).y() - 60
        height = max(200, min(height, buttons_top - avail.top() - gap))
        self.setGeometry(avail.left(), avail.top(), min(self.width(), avail.width()), height)


#: Diff line colours (text, background): added, removed, hunk header, file header.
_DIFF_COLOURS = {
    "+": ("#116329", "#e6ffec"),
    "-": ("#82071e", "#ffebe9"),
    "@": ("#0550ae", None),
    "=": (None, None),
}


def colour_diff(edit: QPlainTextEdit) -> None:
    """Colour a unified diff's lines in place (formats only: the text stays plain)."""
    doc = edit.document()
    block = doc.begin()
    while block.isValid():
        text = block.text()
        kind = (
            "="
            if text.startswith("=== ")
            else (
                "@"
                if text.startswith("@@")
                else text[:1]
                if text[:1] in "+-" and not text.startswith(("+++", "---"))
                else ""
            )
        )
        if kind:
            fg, bg = _DIFF_COLOURS[kind]
            fmt = QTextCharFormat()
            if fg is not None:
                fmt.setForeground(QColor(fg))
            if bg is not None:
                fmt.setBackground(QColor(bg))
            if kind == "=":
                fmt.setFontWeight(QFont.Weight.Bold)
            cursor = QTextCursor(block)
            cursor.movePosition(
                QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor
            )
            cursor.setCharFormat(fmt)
        block = block.next()


#: Keys that do not count as "typing": what a person uses to answer the dialog.
_ANSWER_KEYS = frozenset(
    {
        Qt.Key.Key_Tab,
        Qt.Key.Key_Backtab,
        Qt.Key.Key_Space,
        Qt.Key.Key_Return,
        Qt.Key.Key_Enter,
        Qt.Key.Key_Escape,
        Qt.Key.Key_Shift,
        Qt.Key.Key_Control,
        Qt.Key.Key_Alt,
        Qt.Key.Key_AltGr,
        Qt.Key.Key_Meta,
        Qt.Key.Key_Super_L,
        Qt.Key.Key_Super_R,
    }
)

#: The events the guard judges (presses and releases of keys and mouse buttons).
_INPUT_EVENTS = frozenset(
    {
        QEvent.Type.KeyPress,
        QEvent.Type.KeyRelease,
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseButtonRelease,
        QEvent.Type.MouseButtonDblClick,
    }
)

#: Focus reasons that only a person's Tab or click produce (not setFocus()/accessibility).
_GENUINE_FOCUS = (
    Qt.FocusReason.TabFocusReason,
    Qt.FocusReason.BacktabFocusReason,
    Qt.FocusReason.MouseFocusReason,
)


class ApproveButton(QPushButton):
    """A push button that reports ``approved`` only for a genuine release on it."""

    approved = Signal()

    def __init__(
        self,
        parent: QWidget | None = None,
        guard: InputGuard | None = None,
        *,
        label: str = "Approve",
        name: str = "approveButton",
    ) -> None:
        super().__init__(label, parent)
        self._label = label
        self.setObjectName(name)
        self.setAutoDefault(False)
        self.setDefault(False)
        self.guard = guard
        self._armed = False
        self._unavailable = False
        self._genuine = False
        self._press_ok = False
        self._focus_ok = False
        self.clicked.connect(self._on_clicked)

    # arming ------------------------------------------------------------------------------
    def set_armed(self, armed: bool) -> None:
        armed = armed and not self._unavailable
        self._armed = armed
        if not armed:
            self._press_ok = False
        self.setEnabled(armed)
        if self._unavailable:
            self.setText(f"{self._label} (unavailable)")
        else:
            self.setText(self._label if armed else f"{self._label} (arming…)")

    def set_unavailable(self) -> None:
        self._unavailable = True
        self.set_armed(False)

    @property
    def armed(self) -> bool:
        return self._armed

    # genuine input only -------------------------------------------------------------------
    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.Type.Shortcut:
            e.ignore()  # no mnemonic or shortcut may ever press Approve
            return True
        return super().event(e)

    def focusInEvent(self, e: QFocusEvent) -> None:
        if e.reason() in _GENUINE_FOCUS:
            self._focus_ok = True
        elif e.reason() != Qt.FocusReason.ActiveWindowFocusReason:
            self._focus_ok = False  # setFocus() from code or accessibility
        super().focusInEvent(e)

    def mousePressEvent(self, e: QMouseEvent) -> None:
        self._press_ok = (
            self._armed
            and e.button() == Qt.MouseButton.LeftButton
            and e.spontaneous()
            and self.accept_input_event(e)
        )
        super().mousePressEvent(e)

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:
        genuine = (
            self._armed
            and self._press_ok
            and e.button() == Qt.MouseButton.LeftButton
            and self.rect().contains(e.position().toPoint())
            and self.accept_input_event(e)
        )
        self._press_ok = False
        self._genuine = genuine
        try:
            super().mouseReleaseEvent(e)
        finally:
            self._genuine = False

    def keyPressEvent(self, e: QKeyEvent) -> None:
        # Return/Enter never press Approve: hand them to the dialog (which denies).
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            e.ignore()
            return
        if e.key() == Qt.Key.Key_Space and not e.isAutoRepeat():
            self._press_ok = (
                self._armed and self._focus_ok and e.spontaneous() and self.accept_input_event(e)
            )
        super().keyPressEvent(e)

    def keyReleaseEvent(self, e: QKeyEvent) -> None:
        genuine = (
            self._armed
            and self._press_ok
            and self._focus_ok
            and e.key() == Qt.Key.Key_Space
            and not e.isAutoRepeat()
            and self.accept_input_event(e)
        )
        if e.key() == Qt.Key.Key_Space and not e.isAutoRepeat():
            self._press_ok = False
        self._genuine = genuine
        try:
            super().keyReleaseEvent(e)
        finally:
            self._genuine = False

    def accept_input_event(self, e: QInputEvent) -> bool:
        """The input-provenance guard's verdict on the release being handled.

        Events made inside the process (``sendEvent``, an input method's forwarded keys)
        are not spontaneous; the guard then judges where the platform event came from."""
        if not e.spontaneous():
            log.info("Approve: ignored a non-spontaneous %s", type(e).__name__)
            return False
        return self.guard.accept_approval_event(e) if self.guard is not None else True

    def _on_clicked(self) -> None:
        if self._genuine and self._armed:
            self._genuine = False
            self.approved.emit()
        else:
            log.info("Approve: ignored a click that was not a genuine release on it")


def _batch_others(review: RequestReview) -> list[Candidate]:
    """The crates "Approve all listed" would cover: the unflagged, verified others; none
    when the requester is not a verified cargo process."""
    if not review.requester.verified:
        return []
    return [c for c in review.batch[1:] if not c.flags and c.contents.listing_verified]


def requester_warning_text(review: RequestReview) -> str:
    r = review.requester
    summary = r.summary[:1].upper() + r.summary[1:]
    return (
        "⚠  NOT A VERIFIED CARGO REQUEST\n"
        f"{elide_middle(summary, 240)}.\n"
        "Any program running as you could have sent it. Approve only if you just ran this "
        "cargo command yourself"
        + ('; "Approve all listed" is not offered.' if review.batch else ".")
    )


def _field_rows(approval: ApprovalRequest) -> list[tuple[str, str, bool]]:
    """(name, value, monospace) of each field the dialog shows, values already escaped."""
    req = approval.request
    fields = shown(req)
    rows: list[tuple[str, str, bool]] = [
        ("Operation", fields.op, False),
        ("Registry", elide_middle(_registry_row(approval), 140), False),
        ("Index URL", elide_middle(escape_text(req.registry.index_url, 2048)), True),
    ]
    if fields.name:
        rows.append(("Crate", escape_text(fields.name, 200), True))
    if fields.vers:
        rows.append(("Version", escape_text(fields.vers, 200), True))
    if fields.cksum:
        rows.append(("Checksum (sha256)", format_cksum(fields.cksum), True))
    if approval.bearer is not None:
        tok = approval.bearer
        rows.append(
            ("Credential", f"bearer token sha256:{tok.fingerprint} ({tok.protection})", True)
        )
        rows.append(("Token scopes", elide_middle(tok.scopes_text(), 200), False))
        rows.append(("Token expiry", tok.expires or "expiry unknown", False))
    elif approval.key is not None and approval.action is not Action.LOGIN:
        rows.append(("Signing key", approval.key.kip, True))
    rows += _requester_rows(approval, fields.is_owners)
    return rows


def _requester_rows(approval: ApprovalRequest, is_owners: bool) -> list[tuple[str, str, bool]]:
    review = approval.review
    if review is None:
        prov = approval.provenance
        who = []
        if prov.pid is not None:
            who.append(f"bridge pid {prov.pid}")
        if prov.ppid is not None:
            who.append(f"started by pid {prov.ppid}")
        if prov.cwd:
            who.append(f"in {elide_middle(escape_text(prov.cwd, 2048), 100)}")
        return [("Requested by", ", ".join(who) or "unknown (not reported)", False)]
    rows = [("Requested by", _requester_text(review), False)]
    cargo_proc = review.requester.cargo
    owners = owner_changes(cargo_proc.cmdline) if is_owners and cargo_proc is not None else None
    if owners:
        # Cargo's request does not say this; its command line (read by the app) does.
        rows.append(
            (
                "Owner change",
                elide_middle(owners, 300)
                + "\n(read from cargo's command line, not from its request)",
                False,
            )
        )
    return rows


class ApprovalDialog(QDialog):
    """``decided(bool)`` fires exactly once: True only for a genuine Approve."""

    decided = Signal(bool)

    def __init__(
        self,
        approval: ApprovalRequest,
        *,
        arming_delay: float = 1.0,
        waiting: int = 0,
        parent: QWidget | None = None,
        guard: InputGuard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` drives the arming delay (tests inject a fake one)."""
        super().__init__(parent)
        self.approval = approval
        self.arming = ArmingPolicy(arming_delay, clock)
        self.arming_delay = self.arming.delay
        self.guard = guard if guard is not None else default_guard()
        self._done = False
        self._protected = False
        self.shown_at: float | None = None
        self.visible_at: float | None = None
        self.review = approval.review
        self.approve_all_chosen = False
        self.review_labels: dict[str, QLabel] = {}
        self.field_labels: dict[str, QLabel] = {}
        self.file_list: QTreeWidget | None = None
        self.batch_list: QTreeWidget | None = None
        self.view_changes_button: QPushButton | None = None
        self.changes_window: ChangesWindow | None = None
        self.approve_all_button: ApproveButton | None = None
        self.setWindowTitle(f"gui-approver: {elide_middle(escape_text(approval.summary()), 120)}")
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        self.setModal(False)
        self.setObjectName("approvalDialog")
        self.setMinimumWidth(560)
        # A visible focus ring on the buttons; grey text that reaches WCAG AA.
        style.install()
        style.make_secondary_readable(self)
        # KDE's platform theme adds mnemonics to buttons automatically unless told not to.
        self.setProperty("_kde_no_accelerators", True)
        self.setAccessibleName(self.windowTitle())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 14)
        layout.setSpacing(10)
        self._add_heading(layout)
        scroll, content = self._add_body(layout, self._fields_box(_field_rows(approval)))
        self._add_footer(layout, waiting)
        self._add_buttons(layout)
        self._start_watching()
        if scroll is not None and content is not None:
            self._fit(scroll, content)
        self._update_status()

    # construction ------------------------------------------------------------------------
    def _add_heading(self, layout: QVBoxLayout) -> None:
        approval = self.approval
        if approval.review is not None and not approval.review.requester.verified:
            layout.addWidget(self._requester_warning(approval.review))
        title = _plain(_heading(approval), selectable=False)
        title.setObjectName("heading")
        f = title.font()
        f.setPointSizeF(f.pointSizeF() * 1.35)
        f.setBold(True)
        title.setFont(f)
        layout.addWidget(title)
        intro = _plain(_intro(approval), selectable=False)
        intro.setObjectName("intro")
        intro.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        if approval.bearer is not None:  # what approving releases: not a faded aside
            intro.setForegroundRole(QPalette.ColorRole.WindowText)
            bold = intro.font()
            bold.setBold(True)
            intro.setFont(bold)
        layout.addWidget(intro)

    def _fields_box(self, rows: list[tuple[str, str, bool]]) -> QFrame:
        box = QFrame()
        box.setObjectName("fields")
        box.setFrameShape(QFrame.Shape.StyledPanel)
        box.setAutoFillBackground(True)
        box.setBackgroundRole(QPalette.ColorRole.Base)
        grid = QGridLayout(box)
        grid.setContentsMargins(12, 10, 12, 10)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(6)
        for r, (name, value, mono) in enumerate(rows):
            key = _plain(name, selectable=False)
            key.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            key.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            val = _plain(value, mono=mono)
            val.setAccessibleDescription(name)  # the name stays the value: readers read it
            if name in ("Crate", "Version"):
                bold = val.font()
                bold.setBold(True)
                val.setFont(bold)
            grid.addWidget(key, r, 0)
            grid.addWidget(val, r, 1)
            self.field_labels[name] = val
        grid.setColumnStretch(1, 1)
        return box

    def _add_body(
        self, layout: QVBoxLayout, box: QFrame
    ) -> tuple[QScrollArea | None, QWidget | None]:
        """The fields and, with a review, flags first, then the fields, the contents, the
        changes and the workspace list, all in a scroll area so the dialog fits small
        screens."""
        review = self.review
        body: QVBoxLayout = layout
        scroll: QScrollArea | None = None
        content: QWidget | None = None
        if review is not None:
            scroll = QScrollArea()
            scroll.setObjectName("reviewScroll")
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            # A Tab stop only while there is something to scroll.
            scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            scroll.verticalScrollBar().rangeChanged.connect(self._scroll_range_changed)
            self._scroll = scroll
            content = QWidget()
            content.setObjectName("reviewContent")
            body = QVBoxLayout(content)
            body.setContentsMargins(0, 0, 4, 0)
            body.setSpacing(10)
            self._add_flags(body, review)
        body.addWidget(box)
        if shown(self.approval.request).is_owners:
            note = _plain(OWNERS_NOTE, selectable=False)
            note.setObjectName("ownersNote")
            body.addWidget(note)
        if review is not None and scroll is not None and content is not None:
            self._add_review(body, review)
            body.addStretch(1)
            scroll.setWidget(content)
            layout.addWidget(scroll, 1)
        return scroll, content

    def _add_footer(self, layout: QVBoxLayout, waiting: int) -> None:
        self.status_label = _plain("", selectable=False)
        self.status_label.setObjectName("statusLabel")
        self.status_label.setAccessibleDescription("Status")
        self.status_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.waiting_label = _plain("", selectable=False)
        self.waiting_label.setObjectName("waitingLabel")
        bold = self.waiting_label.font()
        bold.setBold(True)
        self.waiting_label.setFont(bold)
        self.refused_label = _plain("", selectable=False)
        self.refused_label.setObjectName("refusedInput")
        bold = self.refused_label.font()
        bold.setBold(True)
        self.refused_label.setFont(bold)
        self.refused_label.hide()
        layout.addWidget(self.status_label)
        layout.addWidget(self.refused_label)
        layout.addWidget(self.waiting_label)
        self.set_waiting(waiting)
        if self.review is None:
            layout.addStretch(1)  # with a review, the scroll area takes the spare height

    def _add_buttons(self, layout: QVBoxLayout) -> None:
        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        buttons.addStretch(1)
        self.deny_button = QPushButton("Deny")
        self.deny_button.setObjectName("denyButton")
        self.deny_button.setMinimumWidth(104)
        self.deny_button.setDefault(True)
        self.deny_button.setAutoDefault(True)
        self.deny_button.clicked.connect(self._deny)
        self.approve_button = ApproveButton(guard=self.guard)
        self.approve_button.setMinimumWidth(104)
        self.approve_button.set_armed(False)
        self.approve_button.approved.connect(self._approve)
        buttons.addWidget(self.deny_button)
        if self.review is not None and _batch_others(self.review):
            # Exactly the same genuine-input and arming rules as Approve (same class).
            self.approve_all_button = ApproveButton(
                guard=self.guard, label="Approve all listed", name="approveAllButton"
            )
            self.approve_all_button.setMinimumWidth(104)
            self.approve_all_button.set_armed(False)
            self.approve_all_button.approved.connect(self._approve_all)
            buttons.addWidget(self.approve_all_button)
        buttons.addWidget(self.approve_button)
        layout.addLayout(buttons)
        self.deny_button.setFocus()

    def _start_watching(self) -> None:
        """The timers, the input guard's signals and the event filter that keep Approve
        honest."""
        self._arm_timer = QTimer(self)
        self._arm_timer.setSingleShot(True)
        self._arm_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._arm_timer.timeout.connect(self._arm)
        self._raise_timer = QTimer(self)
        self._raise_timer.setSingleShot(True)
        self._raise_timer.setInterval(200)
        self._raise_timer.timeout.connect(self._reassert_on_top)
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_status)
        self._tick.start()
        self.guard.changed.connect(self._on_guard_changed)
        self.guard.input_reset.connect(self._restart_arming)
        # Keys typed into the dialog (someone typing elsewhere when it took the focus)
        # restart the arming delay: see eventFilter.
        for w in (self, *self.findChildren(QWidget)):
            w.installEventFilter(self)
        if not self.guard.available:
            for b in self._approve_buttons():
                b.set_unavailable()

    # review ------------------------------------------------------------------------------
    def _approve_buttons(self) -> list[ApproveButton]:
        out = [self.approve_button]
        if self.approve_all_button is not None:
            out.append(self.approve_all_button)
        return out

    def _review_label(
        self,
        body: QVBoxLayout,
        name: str,
        text: str,
        *,
        bold: bool = False,
        mono: bool = False,
        warn: bool = False,
    ) -> QLabel:
        label = _plain(text, mono=mono)
        label.setObjectName(name)
        if bold:
            f = label.font()
            f.setBold(True)
            label.setFont(f)
        if warn:
            label.setAutoFillBackground(True)
            label.setBackgroundRole(QPalette.ColorRole.AlternateBase)
            label.setFrameShape(QFrame.Shape.Box)
            label.setMargin(6)
        body.addWidget(label)
        self.review_labels[name] = label
        return label

    def _add_flags(self, body: QVBoxLayout, review: RequestReview) -> None:
        flags = list(review.flags)
        if review.contents is not None and review.contents.unsupported:
            flags.insert(
                0,
                "NOT WHAT CARGO UNPACKS: this archive uses tar features cargo "
                "never produces (see below)",
            )
        if review.contents is not None and review.contents.verified:
            flags += [f"problem in the archive: {p}" for p in review.contents.problems[:5]]
        flags += list(review.requester.warnings[:3])
        flags += [n for n in review.notes if n == INTEGRITY_NOTE]
        if flags:
            text = "\n".join("⚠ " + elide_middle(f, 200) for f in flags[:10])
            self._review_label(body, "flags", text, bold=True, warn=True)

    def _add_review(self, body: QVBoxLayout, review: RequestReview) -> None:
        contents = review.contents
        if contents is not None:
            self._add_contents(body, review)
        for n in review.notes:
            if n not in (OWNERS_NOTE, INTEGRITY_NOTE):  # (the latter is a flag)
                self._review_label(body, "note", elide_middle(n, 400))
        if len(review.batch) > 1:
            self._add_batch(body, review)

    def _add_contents(self, body: QVBoxLayout, review: RequestReview) -> None:
        contents = review.contents
        assert contents is not None
        if not contents.verified or contents.listing is None:
            self._review_label(
                body,
                "contentsWarning",
                "⚠ CONTENTS NOT VERIFIED: "
                + elide_middle(contents.reason or "the .crate file was not found", 300)
                + "\ngui-approver could not find the exact file cargo asks to sign, so it "
                "cannot show what will be published. Approving signs the checksum above "
                "whatever that archive contains.",
                bold=True,
                warn=True,
            )
            return
        lst = contents.listing
        why = contents.why_not_verified
        if why is None:
            self._review_label(
                body,
                "contentsVerified",
                "Contents verified: this is exactly what will be published",
                bold=True,
            )
        else:
            reasons = [elide_middle(u, 160) for u in contents.unsupported[:4]]
            if len(contents.unsupported) > 4:
                reasons.append(f"… and {len(contents.unsupported) - 4} more")
            head = (
                "⚠ CARGO MAY UNPACK SOMETHING ELSE: "
                if lst.unsupported
                else "⚠ INCOMPLETE LISTING: "
            )
            box = self._review_label(
                body,
                "contentsUnsupported",
                head
                + why
                + "\n"
                + "".join(f"• {r}\n" for r in reasons)
                + "The list below is what gui-approver read; approving signs the checksum "
                "above, whatever cargo makes of this archive.",
                bold=True,
                warn=True,
            )
            box.setForegroundRole(QPalette.ColorRole.BrightText)
            box.setBackgroundRole(QPalette.ColorRole.Dark)
        n = len(lst.files)
        size = (
            f"{n} file{'' if n == 1 else 's'}, {human_size(lst.total_size)} "
            f"({human_size(lst.compressed_size)} compressed)"
        )
        if not lst.complete:
            size += "; the listing is incomplete"
        details = [size]
        m = contents.manifest
        if m is not None:
            for label, value in (
                ("Description", m.description),
                ("License", m.license or m.license_file),
                ("Repository", m.repository),
            ):
                if value:
                    details.append(f"{label}: {elide_middle(' '.join(value.split()), 160)}")
            if m.build:
                details.append(f"Build script: {elide_middle(m.build, 120)}")
            if m.proc_macro:
                details.append("Proc-macro crate (runs code at compile time)")
        self._review_label(body, "contentsDetails", "\n".join(details))
        self._add_changes(body, review)
        files = QTreeWidget()
        files.setObjectName("fileList")
        files.setColumnCount(2)
        files.setHeaderLabels(["File", "Size"])
        files.setRootIsDecorated(False)
        files.setUniformRowHeights(True)
        files.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        files.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        files.setAccessibleName("Files in the crate")
        header = files.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        for f in lst.files:
            text = elide_middle(f.path, 160)
            if f.kind not in ("file", "dir"):
                text += f"  [{f.kind}]"
            if f.note:
                text += f"  ! {elide_middle(f.note, 80)}"
            item = QTreeWidgetItem([text, human_size(f.size)])
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            files.addTopLevelItem(item)
        rows = max(2, min(len(lst.files), 8))
        files.setFixedHeight(
            files.sizeHintForRow(0) * rows + header.sizeHint().height() + 6 if lst.files else 60
        )
        body.addWidget(files)
        self.file_list = files

    def _add_changes(self, body: QVBoxLayout, review: RequestReview) -> None:
        ch = review.changes
        if ch is None:
            self._review_label(
                body, "changes", "No earlier approved version of this crate is on record."
            )
            return
        lines = [elide_middle(ch.summary(), 300)]
        lines += [elide_middle(n, 200) for n in ch.notes]  # information, not a ⚠ flag
        listed = (
            [f"changed  {c.describe()}" for c in ch.changed]
            + [f"added    {f.describe()}" for f in ch.added]
            + [f"removed  {f.describe()}" for f in ch.removed]
        )
        lines += ["  " + elide_middle(t, 150) for t in listed[:12]]
        if len(listed) > 12:
            lines.append(f"  … and {len(listed) - 12} more")
        self._review_label(body, "changes", "\n".join(lines), mono=True)
        if review.diffs:
            row = QHBoxLayout()
            button = QPushButton("View changes…")
            button.setObjectName("viewChangesButton")
            button.setAutoDefault(False)
            button.setDefault(False)
            button.clicked.connect(self.show_changes)
            row.addWidget(button)
            row.addStretch(1)
            body.addLayout(row)
            self.view_changes_button = button

    def _requester_warning(self, review: RequestReview) -> QFrame:
        """The boxed warning at the top for a requester that is not a verified cargo."""
        frame = QFrame()
        frame.setObjectName("requesterWarningBox")
        frame.setFrameShape(QFrame.Shape.Box)
        frame.setStyleSheet(
            "QFrame#requesterWarningBox { border: 2px solid #b3261e; "
            "border-radius: 4px; background: #fdecea; }"
            "QFrame#requesterWarningBox QLabel { color: #8c1d18; "
            "border: none; background: transparent; }"
        )
        box = QVBoxLayout(frame)
        box.setContentsMargins(12, 8, 12, 8)
        label = _plain(requester_warning_text(review), selectable=False)
        label.setObjectName("requesterWarning")
        label.setAccessibleName("Warning: not a verified cargo request")
        bold = label.font()
        bold.setBold(True)
        label.setFont(bold)
        box.addWidget(label)
        self.review_labels["requesterWarning"] = label
        return frame

    def _add_batch(self, body: QVBoxLayout, review: RequestReview) -> None:
        n = len(review.batch)
        others = _batch_others(review)
        flagged = [c for c in review.batch[1:] if c not in others]
        if not review.requester.verified:
            text = (
                f"This run lists {n} crates. The requester is not a verified cargo "
                'process, so "Approve all listed" is not offered: each crate gets its '
                "own dialog."
            )
            flagged = []
        elif others:
            text = (
                f'This cargo run packaged {n} crates. "Approve all listed" also '
                f"approves the {len(others)} unflagged other"
                f"{'' if len(others) == 1 else 's'}, each only with exactly this checksum, "
                "for 5 minutes; anything else gets its own dialog."
            )
        else:
            text = (
                f"This cargo run packaged {n} crates; each of the others is flagged "
                "below and gets its own dialog."
            )
        if others and flagged:
            text += (
                f" The {len(flagged)} flagged crate{'' if len(flagged) == 1 else 's'} "
                "(⚠) will each get their own dialog."
            )
        self._review_label(body, "batchHeading", text, bold=True)
        lst = QTreeWidget()
        lst.setObjectName("batchList")
        lst.setColumnCount(5)
        lst.setHeaderLabels(["Crate", "Version", "sha256", "Contents", "Flags"])
        lst.setRootIsDecorated(False)
        lst.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        lst.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        lst.setAccessibleName("Crates of this cargo run")
        for i, c in enumerate(review.batch):
            state = (
                "verified"
                if c.contents.listing_verified
                else "NOT verified"
                if not c.contents.verified
                else "cargo may unpack something else"
            )
            name = elide_middle(c.name, 64) + ("  (this request)" if i == 0 else "")
            if i == 0:
                flags = "(this dialog)"
            elif c.flags:
                flags = "⚠ own dialog: " + elide_middle(c.flags[0], 60)
            else:
                flags = "none"
            item = QTreeWidgetItem(
                [name, elide_middle(c.vers, 40), c.cksum[:16] + "…", state, flags]
            )
            if i and c.flags:
                item.setToolTip(4, "\n".join(elide_middle(f, 300) for f in c.flags[:10]))
                font = item.font(4)
                font.setBold(True)
                item.setFont(4, font)
            lst.addTopLevelItem(item)
        for col in range(4):
            lst.resizeColumnToContents(col)
        # the flags column takes what is left (elided); every flag is spelled out below
        lst.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        lst.setTextElideMode(Qt.TextElideMode.ElideRight)
        lst.header().setStretchLastSection(True)
        rows = min(n, 6)
        lst.setFixedHeight(lst.sizeHintForRow(0) * rows + lst.header().sizeHint().height() + 6)
        body.addWidget(lst)
        self.batch_list = lst
        if flagged:
            lines = [
                f"⚠ {elide_middle(c.name, 64)} {elide_middle(c.vers, 40)}: "
                + elide_middle("; ".join(c.flags), 300)
                for c in flagged[:8]
            ]
            if len(flagged) > 8:
                lines.append(f"… and {len(flagged) - 8} more flagged crates")
            self._review_label(body, "batchFlags", "\n".join(lines), warn=True)

    def _fit(self, scroll: QScrollArea, content: QWidget) -> None:
        screen = self.screen()
        avail = screen.availableGeometry() if screen is not None else None
        max_h = (avail.height() if avail is not None else 800) - 60
        width = max(
            self.minimumWidth(), min(760, (avail.width() if avail is not None else 1280) - 40)
        )
        others = self.sizeHint().height() - scroll.sizeHint().height()
        # The content's height at the width it will really have (wrapped labels are taller
        # when narrow: measuring at the size hint's width left an empty band).
        outer = self.layout()
        margins = outer.contentsMargins() if outer is not None else None
        inner = width - (margins.left() + margins.right() if margins is not None else 36)
        inner -= scroll.verticalScrollBar().sizeHint().width()
        body = content.layout()
        want = (
            body.totalHeightForWidth(inner)
            if body is not None and body.hasHeightForWidth()
            else content.sizeHint().height()
        ) + 4
        height = max(120, min(want, max_h - others))
        scroll.setMinimumHeight(height)
        self.resize(width, min(others + height, max_h))

    def show_changes(self) -> None:
        """Open the unified diffs in a read-only window (plain text)."""
        if self.review is None or self._done:
            return
        if self.changes_window is None:
            self.changes_window = ChangesWindow(self.review, self)
            self.changes_window.closed.connect(self._changes_closed)
            self.changes_window.place_beside(self)
        self.changes_window.show()
        self.changes_window.raise_()
        self.changes_window.activateWindow()

    def _changes_closed(self) -> None:
        if not self._done and self.isVisible():
            self.raise_()
            self.activateWindow()

    def _changes_open(self) -> bool:
        return self.changes_window is not None and self.changes_window.isVisible()

    # state -------------------------------------------------------------------------------
    def set_waiting(self, n: int) -> None:
        self.waiting_label.setText(
            f"{n} more request{'' if n == 1 else 's'} waiting (each gets its own dialog)"
            if n
            else ""
        )
        self.waiting_label.setVisible(bool(n))

    def _remaining(self) -> float:
        return max(0.0, self.approval.timeout - (time.monotonic() - self.approval.received))

    def _obscured(self) -> bool:
        return self._protected and self.guard.is_obscured(self)

    def _update_status(self) -> None:
        self.status_label.setForegroundRole(
            QPalette.ColorRole.WindowText
            if not self.guard.available
            else QPalette.ColorRole.PlaceholderText
        )
        if not self.guard.available:
            state = f"{self.guard.problem} "
        elif self.approve_button.armed:
            state = ""
        elif self._obscured():
            state = "Approve is disarmed: another window covers this dialog. "
        elif not self.isActiveWindow():
            state = "Approve is disarmed while this window is not the active window. "
        else:
            state = (
                "Approve is arming; it works once this window has been active for "
                f"{self.arming_delay:g} s. "
            )
        self.status_label.setText(f"{state}Denies automatically in {self._remaining():.0f} s.")

    def _can_arm(self) -> bool:
        return (
            not self._done
            and self.guard.available
            and self.isVisible()
            and self.isActiveWindow()
            and not self._obscured()
        )

    def _rearm_or_disarm(self, why: str) -> None:
        state = self.arming.consider(self._can_arm())
        if state is Arm.DISARMED:
            self._disarm(why)
        elif state is Arm.ARMING and not self._arm_timer.isActive():
            self._arm_timer.start(math.ceil(self.arming.remaining() * 1000))
        self._update_status()

    def _arm(self) -> None:
        state = self.arming.fire(self._can_arm())
        if state is Arm.ARMED and not self.approve_button.armed:
            for b in self._approve_buttons():
                b.set_armed(True)
            log.info("dialog %d: Approve armed", self.approval.id)
        elif state is Arm.ARMING:  # the timer fired early: wait for the rest
            self._arm_timer.start(math.ceil(self.arming.remaining() * 1000))
        elif state is Arm.DISARMED:
            self._disarm("the dialog could not arm")
        self._update_status()

    def _disarm(self, why: str) -> None:
        self.arming.restart()
        self._arm_timer.stop()
        if self.approve_button.armed:
            log.info("dialog %d: Approve disarmed (%s)", self.approval.id, why)
        for b in self._approve_buttons():
            b.set_armed(False)
        self._update_status()

    def _restart_arming(self, why: str) -> None:
        if self._done:
            return
        if self.approve_button.armed or self._arm_timer.isActive():
            self._disarm(why)
        self._rearm_or_disarm(why)

    def eventFilter(self, watched: QObject, e: QEvent) -> bool:
        if (
            e.type() in _INPUT_EVENTS
            and isinstance(e, QInputEvent)
            and e.spontaneous()
            and not self._done
            and self.guard.available
        ):
            why = self.guard.refusal(e)
            if why is not None and self._software_input(watched, e, why):
                return True
        if (
            e.type() == QEvent.Type.KeyPress
            and isinstance(e, QKeyEvent)
            and (e.key() not in _ANSWER_KEYS or e.isAutoRepeat())
        ):
            self._restart_arming("typing")
        return False

    def _software_input(self, watched: QObject, e: QInputEvent, why: str) -> bool:
        """Input the guard does not vouch for: True to swallow it. It may do anything but
        act on Approve or leave the focus there."""
        if isinstance(e, QKeyEvent):
            key = e.key()
            if e.type() == QEvent.Type.KeyPress and key in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab):
                forward = key == Qt.Key.Key_Tab and not (
                    e.modifiers() & Qt.KeyboardModifier.ShiftModifier
                )
                self.focusNextPrevChild(forward)
                if isinstance(self.focusWidget(), ApproveButton):
                    log.info(
                        "dialog %d: a Tab from software would focus Approve; focus stays on Deny",
                        self.approval.id,
                    )
                    self.deny_button.setFocus(Qt.FocusReason.OtherFocusReason)
                return True
            if isinstance(watched, ApproveButton) and key == Qt.Key.Key_Space:
                if e.type() == QEvent.Type.KeyPress and not e.isAutoRepeat():
                    watched.accept_input_event(e)  # logs the refusal
                    self._say_refused(watched, why)
                return True
            return False
        if isinstance(watched, ApproveButton):
            if e.type() == QEvent.Type.MouseButtonPress:
                watched.accept_input_event(e)  # logs the refusal
                self._say_refused(watched, why)
            if self.focusWidget() is watched:  # the press gave it the focus: take it back
                self.deny_button.setFocus(Qt.FocusReason.OtherFocusReason)
            return True
        return False

    def _scroll_range_changed(self, _low: int, high: int) -> None:
        self._scroll.setFocusPolicy(
            Qt.FocusPolicy.StrongFocus if high > 0 else Qt.FocusPolicy.NoFocus
        )

    def _say_refused(self, button: ApproveButton, why: str) -> None:
        if not button.armed:
            return  # a disarmed Approve is disabled: nothing to explain
        text = WARPED_POINTER_NOTE if why == POINTER_MOVED_BY_SOFTWARE else SOFTWARE_INPUT_NOTE
        log.info(
            "dialog %d: Approve refused input (%s)",
            self.approval.id,
            "pointer moved by software"
            if why == POINTER_MOVED_BY_SOFTWARE
            else "input from software",
        )
        self.refused_label.setText(text)
        if self.refused_label.isHidden():
            self.refused_label.show()
            if self.review is None:  # grow by the message, without a band above the footer
                layout = self.layout()
                if layout is not None:
                    layout.activate()
                    self.resize(self.width(), layout.totalHeightForWidth(self.width()))

    def _on_guard_changed(self) -> None:
        if self._done:
            return
        if not self.guard.available:
            for b in self._approve_buttons():
                b.set_unavailable()
        # Covered by our own "View changes" window: stay disarmed, but do not jump over it.
        if (
            self._obscured()
            and self.isVisible()
            and not self._raise_timer.isActive()
            and not self._changes_open()
        ):
            self._raise_timer.start()
        self._rearm_or_disarm(
            "covered by another window" if self._obscured() else "input provenance unavailable"
        )

    def _reassert_on_top(self) -> None:
        if not self._done and self.isVisible() and not self._changes_open():
            self.raise_()
            self.activateWindow()

    def changeEvent(self, e: QEvent) -> None:
        if e.type() == QEvent.Type.ActivationChange:
            self._rearm_or_disarm("the window lost activation")
        super().changeEvent(e)

    def showEvent(self, e: QShowEvent) -> None:
        if self.shown_at is None:
            self.shown_at = time.monotonic()
        if not self._protected and not self._done:
            self.guard.protect(self)  # before the window is mapped
            self._protected = True
        super().showEvent(e)
        self.raise_()
        self.activateWindow()

    def hideEvent(self, e: QHideEvent) -> None:
        self._disarm("the window was hidden")
        super().hideEvent(e)

    def paintEvent(self, e: QPaintEvent) -> None:
        super().paintEvent(e)
        if self.visible_at is None:
            self.visible_at = time.monotonic()
            log.info(
                "dialog %d: visible %.1f ms after the request arrived",
                self.approval.id,
                (self.visible_at - self.approval.received) * 1000,
            )

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape):
            self._finish(False)
            return
        super().keyPressEvent(e)

    def _unprotect(self) -> None:
        if self._protected:
            self._protected = False
            self.guard.unprotect(self)

    # Bound methods, not lambdas: a lambda capturing ``self`` in a connection is a reference
    # cycle through C++ that keeps the dialog alive until exit (and PySide then crashes
    # deleting it at interpreter shutdown).
    def _deny(self) -> None:
        self._finish(False)

    def _approve(self) -> None:
        self._finish(True)

    def _approve_all(self) -> None:
        self.approve_all_chosen = True
        self._finish(True)

    def _finish(self, approved: bool) -> None:
        if self._done:
            return
        self._done = True
        self._arm_timer.stop()
        self._tick.stop()
        log.info(
            "dialog %d: %s",
            self.approval.id,
            ("approved (all listed)" if self.approve_all_chosen else "approved")
            if approved
            else "denied",
        )
        self._close_changes()
        self.decided.emit(approved)
        self.hide()
        self._unprotect()

    def _close_changes(self) -> None:
        if self.changes_window is not None:
            self.changes_window.hide()

    def dismiss(self) -> None:
        """Close without a decision (the request was decided elsewhere, e.g. timed out)."""
        self._done = True
        self._close_changes()
        self._arm_timer.stop()
        self._tick.stop()
        self.hide()
        self._unprotect()

    def reject(self) -> None:
        self._finish(False)

    def closeEvent(self, e: QCloseEvent) -> None:
        self._finish(False)
        super().closeEvent(e)
