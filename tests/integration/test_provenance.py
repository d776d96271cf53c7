"""gui_approver.review.requester against real process trees.

A stand-in for cargo is the Python interpreter reached through a symlink named ``cargo``
(so the kernel calls the process ``cargo``) reading its program from stdin (so its command
line is ``cargo - publish --registry local``); it starts a stand-in bridge with
``--cargo-plugin``. Each process blocks on a pipe this test holds, so nothing sleeps. The
real cargo's chain is checked in tests/e2e/test_review_cargo.py.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from checks import present

from gui_approver.client.framing import Provenance
from gui_approver.review.requester import cargo_subcommand, resolve_requester

BRIDGE = (
    "import os, sys\n"
    "gone = os.environ.get('PARENT_GONE_FD')\n"
    "if gone:\n"
    "    os.read(int(gone), 1)  # EOF once the parent has exited\n"
    "print(os.getpid(), flush=True)\n"
    "os.read(int(os.environ['HOLD_FD']), 1)\n"
)
FAKE_CARGO = (
    "import os, subprocess, sys\n"
    "hold = int(os.environ['HOLD_FD'])\n"
    "bridge = [sys.executable, '-c', os.environ['BRIDGE_CODE'], '--cargo-plugin']\n"
    "if os.environ.get('ORPHAN'):\n"
    "    r, w = os.pipe()\n"
    "    env = dict(os.environ, PARENT_GONE_FD=str(r))\n"
    "    subprocess.Popen(bridge, pass_fds=(hold, r), env=env)\n"
    "    os._exit(0)\n"
    "subprocess.Popen(bridge, pass_fds=(hold,)).wait()\n"
)


class Tree:
    """bash -> cargo (stand-in) -> bridge (stand-in), all blocked until ``close()``."""

    def __init__(
        self,
        tmp: Path,
        *,
        via_cargo: bool = True,
        orphan: bool = False,
        terminal: str | None = None,
    ) -> None:
        self.crate = tmp / "src" / "foo"
        self.crate.mkdir(parents=True)
        bindir = tmp / "bin"
        bindir.mkdir()
        (bindir / "cargo").symlink_to(os.path.realpath(sys.executable))
        script = tmp / "fake_cargo.py"
        script.write_text(FAKE_CARGO)
        r, self._w = os.pipe()
        env = dict(
            os.environ,
            HOLD_FD=str(r),
            BRIDGE_CODE=BRIDGE,
            CRATE=str(self.crate),
            FAKE=str(bindir / "cargo"),
            SCRIPT=str(script),
        )
        if orphan:
            env["ORPHAN"] = "1"
        if via_cargo:
            cmd = 'cd "$CRATE" && "$FAKE" - publish --registry local < "$SCRIPT"; true'
        else:
            cmd = f'cd "$CRATE" && {sys.executable} -c "$BRIDGE_CODE" --cargo-plugin; true'
        argv = ["bash", "-c", cmd]
        if terminal:  # a stand-in terminal (bash under another name) runs that shell
            (bindir / terminal).symlink_to(present(shutil.which("bash")))
            argv = [str(bindir / terminal), "-c", f"bash -c {shlex.quote(cmd)}; true"]
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, pass_fds=(r,))
        os.close(r)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the stand-in bridge did not start"
        self.bridge_pid = int(line)

    def close(self) -> None:
        os.close(self._w)
        assert self.proc.stdout is not None
        self.proc.stdout.read()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path)
    yield t
    t.close()


def test_chain_bridge_cargo_shell(tree, tmp_path):
    info = resolve_requester(
        Provenance(pid=tree.bridge_pid, ppid=None, cwd=str(tree.crate)),
        peer_pid=tree.bridge_pid,
        home=str(tmp_path),
    )
    assert info.verified, info.lines()
    assert info.pid_source == "kernel" and info.warnings == ()
    assert info.summary == "cargo publish in ~/src/foo, started from bash (-c)"
    assert info.bridge is not None and info.bridge.pid == tree.bridge_pid
    assert "--cargo-plugin" in info.bridge.cmdline
    cargo = info.cargo
    assert cargo is not None and cargo.role == "cargo" and cargo.name == "cargo"
    assert cargo.cmdline[1:] == ("-", "publish", "--registry", "local")
    assert cargo.cwd == str(tree.crate)
    assert info.ancestors[0].role == "shell" and info.ancestors[0].name == "bash"
    assert 1 <= len(info.ancestors) <= 8
    assert all(p.pid > 1 for p in info.ancestors)
    # what the lookup of the .crate gets
    assert info.context is not None and info.context.cwd == str(tree.crate)
    lines = info.lines()
    assert lines[0] == info.summary
    assert any(line.strip().startswith("cargo") and "~/src/foo" in line for line in lines)


def test_chain_up_to_the_terminal(tmp_path):
    t = Tree(tmp_path, terminal="xterm")
    try:
        info = resolve_requester(
            Provenance(pid=t.bridge_pid), peer_pid=t.bridge_pid, home=str(tmp_path)
        )
    finally:
        t.close()
    assert info.summary == "cargo publish in ~/src/foo, started from bash (-c) in xterm"
    assert [a.role for a in info.ancestors] == ["shell", "terminal"]  # stops at the terminal


def test_kernel_pid_wins_and_a_mismatch_is_flagged(tree, tmp_path):
    info = resolve_requester(
        Provenance(pid=tree.bridge_pid + 1000, cwd="/elsewhere"),
        peer_pid=tree.bridge_pid,
        home=str(tmp_path),
    )
    assert info.pid == tree.bridge_pid and not info.verified
    assert any(f"said it is pid {tree.bridge_pid + 1000}" in w for w in info.warnings)
    assert any("said its directory is /elsewhere" in w for w in info.warnings)
    assert info.summary.startswith("cargo publish in ~/src/foo, started from bash (-c) [! ")


def test_self_reported_pid_is_used_but_not_verified(tree, tmp_path):
    info = resolve_requester(Provenance(pid=tree.bridge_pid), home=str(tmp_path))
    assert info.pid_source == "self-reported" and not info.verified
    assert info.cargo is not None and info.cargo.role == "cargo"
    assert "not by the kernel" in info.summary


def test_exited_process_cannot_be_verified():
    p = subprocess.Popen(["true"])
    p.wait()
    info = resolve_requester(Provenance(pid=p.pid), peer_pid=p.pid)
    assert not info.verified
    assert info.summary == (
        f"requester could not be verified: the requesting process (pid {p.pid}) has already exited"
    )
    assert resolve_requester(Provenance()).summary == (
        "requester could not be verified: the requesting process is unknown (no pid)"
    )


def test_bridge_not_started_by_cargo(tmp_path):
    t = Tree(tmp_path, via_cargo=False)
    try:
        info = resolve_requester(Provenance(pid=t.bridge_pid), peer_pid=t.bridge_pid)
    finally:
        t.close()
    assert not info.verified
    assert info.summary.startswith(
        "requester could not be verified: the credential provider was started by bash"
    )
    assert info.summary.endswith("not by cargo")
    assert info.cargo is not None and info.cargo.role == "parent"


def test_cargo_gone_before_the_request_is_examined(tmp_path):
    t = Tree(tmp_path, orphan=True)
    try:
        info = resolve_requester(Provenance(pid=t.bridge_pid), peer_pid=t.bridge_pid)
    finally:
        t.close()
    assert not info.verified
    assert info.summary.startswith("requester could not be verified:")
    assert info.cargo is None or info.cargo.role != "cargo"


def test_a_process_that_is_no_bridge_is_flagged():
    info = resolve_requester(Provenance(pid=os.getpid()), peer_pid=os.getpid())
    assert any("not a credential provider that cargo started" in w for w in info.warnings)
    assert not info.verified


def test_cargo_subcommand():
    assert cargo_subcommand(("cargo", "publish")) == "publish"
    assert (
        cargo_subcommand(
            (
                "/x/cargo",
                "+nightly",
                "-v",
                "--config",
                "a=1",
                "-Z",
                "asymmetric-token",
                "publish",
                "--workspace",
            )
        )
        == "publish"
    )
    assert cargo_subcommand(("cargo", "--locked")) is None
    assert cargo_subcommand(()) is None
