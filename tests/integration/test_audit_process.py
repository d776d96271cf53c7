"""The audit log against real processes: a writer killed mid-record, SIGKILL at any moment, a
file-size limit (RLIMIT_FSIZE) in a child: earlier records stay intact, no partial line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from checks import present

from gui_approver.core.audit import AuditLog, read_recent


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


_KILLED_WRITER = r"""
import os, sys
from gui_approver.core.audit import AuditLog, make_record, _encode
log = AuditLog(sys.argv[1])
for i in range(100):
    log.record(decision="signed", reason=str(i))
line = _encode(make_record(decision="signed", reason="torn"))
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
os.write(fd, line[: len(line) // 2])     # SIGKILL arrives in the middle of this record
print("half-written", flush=True)
sys.stdin.read()
"""


def test_a_writer_killed_mid_record_loses_only_that_record(tmp_path):
    path = tmp_path / "audit.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert present(proc.stdout).readline().strip() == "half-written"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        present(proc.stdin).close()
        present(proc.stdout).close()
    assert not path.read_bytes().endswith(b"\n")
    recs = read_recent(1000, path)
    assert [r["reason"] for r in recs] == [str(i) for i in range(100)]
    AuditLog(path).record(decision="signed", reason="next")
    assert [r["reason"] for r in read_recent(1000, path)][-2:] == ["99", "next"]


_LOOPING_WRITER = r"""
import sys
from gui_approver.core.audit import AuditLog
log = AuditLog(sys.argv[1])
i = 0
while True:
    log.record(decision="signed", reason=str(i))
    i += 1
    if i == 50:
        print("running", flush=True)
"""


def test_sigkill_at_any_moment_leaves_earlier_records_intact(tmp_path):
    path = tmp_path / "audit.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOOPING_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert present(proc.stdout).readline().strip() == "running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        present(proc.stdout).close()
    recs = read_recent(10**6, path)
    assert len(recs) >= 50
    assert [r["reason"] for r in recs] == [str(i) for i in range(len(recs))]
    complete = [ln for ln in lines(path) if ln.endswith(b"}")]
    assert len(complete) == len(recs)  # at most a torn tail was dropped


_FSIZE_WRITER = r"""
import resource, signal, sys
from gui_approver.core.audit import AuditLog, AuditError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
log = AuditLog(sys.argv[1])
log.record(decision="signed", reason="before")
size = __import__("os").path.getsize(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, size + 10))
try:
    log.record(decision="signed", reason="x" * 100)
except AuditError as exc:
    print("refused:", exc)
"""


def test_a_file_size_limit_is_a_refusal_without_a_partial_line(tmp_path):
    """A real kernel write failure (EFBIG from RLIMIT_FSIZE) that needs no root."""
    path = tmp_path / "audit.jsonl"
    out = subprocess.run(
        [sys.executable, "-c", _FSIZE_WRITER, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert out.startswith("refused: cannot write the audit log") and "too large" in out
    assert path.read_bytes().endswith(b"\n") and len(lines(path)) == 1
