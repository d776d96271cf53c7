"""The test suite's own layout rules (tests/conftest.py): markers by directory, and unit/ tests
that cannot start real components."""

from __future__ import annotations

from typing import Any

import conftest
import pytest


class FakeItem:
    """What the collection hook reads of a pytest.Item."""

    def __init__(self, relpath: str, fixtures: tuple[str, ...] = ()) -> None:
        self.path = conftest.TESTS / relpath
        self.nodeid = f"tests/{relpath}::test_x"
        self.fixturenames = list(fixtures)
        self.markers: list[str] = []

    def add_marker(self, marker: str) -> None:
        self.markers.append(marker)


def collect(pytestconfig: pytest.Config, *items: FakeItem) -> None:
    fake: Any = list(items)
    conftest.pytest_collection_modifyitems(pytestconfig, fake)


def test_e2e_and_gui_are_marked_by_directory(pytestconfig):
    items = [
        FakeItem("e2e/test_a.py"),
        FakeItem("gui/test_b.py", ("qtbot",)),
        FakeItem("integration/test_c.py", ("secret_service",)),
        FakeItem("unit/test_d.py", ("tmp_path",)),
    ]
    collect(pytestconfig, *items)
    assert [i.markers for i in items] == [["e2e"], ["gui"], [], []]


@pytest.mark.parametrize(
    "fixture",
    ["secret_service", "app_env", "xvfb_display", "softhsm", "harness", "qtbot", "gui_app"],
)
def test_a_unit_test_cannot_start_a_real_component(pytestconfig, fixture):
    with pytest.raises(pytest.UsageError, match=f"tests/unit/test_d.py::test_x uses {fixture}"):
        collect(pytestconfig, FakeItem("unit/test_d.py", ("tmp_path", fixture)))
    collect(pytestconfig, FakeItem("integration/test_d.py", ("tmp_path", fixture)))  # fine there
