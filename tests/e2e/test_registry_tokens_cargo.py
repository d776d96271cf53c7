"""The demo registry's bearer-token mode with the real cargo (cargo:token)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from registry_tools import (
    CARGO,
    call,
    token_cargo,
)

from gui_approver.registry.server import DemoRegistry

needs_cargo = pytest.mark.skipif(CARGO is None, reason="cargo is not on PATH")


@needs_cargo
@pytest.mark.e2e
@pytest.mark.parametrize("auth_required", [False, True])
def test_cargo_token_publish_then_revoked_token_is_refused(
    tmp_path: Path, auth_required: bool
) -> None:
    with DemoRegistry(tmp_path / "reg", token_mode=True, auth_required=auth_required) as reg:
        token = reg.issue_token("carol")
        env = token_cargo(tmp_path / "work", reg, token)
        crate = env.new_crate("tok-e2e")
        proc = env.publish(crate)
        assert proc.returncode == 0, proc.stderr
        assert "Published tok-e2e v0.1.0" in proc.stderr
        assert token in reg.accepted_tokens
        assert set(reg.accepted_tokens) == {token}
        assert reg.owners("tok-e2e") == ["carol"]
        if auth_required:  # cargo sent the token on its index reads too
            assert any(
                s.path.startswith("/index/") and s.request_headers.get("Authorization") == token
                for s in reg.served
            )

        reply = call(reg, "DELETE", "/api/v1/tokens/current", headers={"Authorization": token})
        assert reply.status == 204
        manifest = crate / "Cargo.toml"
        manifest.write_text(manifest.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))
        refused = env.publish(crate)
        assert refused.returncode != 0
        assert "403" in refused.stderr, refused.stderr
        assert "the token has been revoked" in refused.stderr  # our detail reaches the user
        assert [e["vers"] for e in reg.crates()["tok-e2e"]] == ["0.1.0"]


@needs_cargo
@pytest.mark.e2e
def test_cli_token_mode_subprocess_with_cargo(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gui_approver.registry.server",
            "demo-registry",
            "--token-mode",
            "--data",
            str(data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        index_url = proc.stdout.readline().split(" ", 1)[1].strip()
        issued = subprocess.run(
            [
                sys.executable,
                "-m",
                "gui_approver",
                "demo-registry-key",
                "--data",
                str(data),
                "--token",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        token = issued.stdout.strip()

        @dataclass
        class _R:
            index_url: str

        env = token_cargo(tmp_path / "work", _R(index_url), token)  # type: ignore[arg-type]
        crate = env.new_crate("tok-cli")
        published = env.publish(crate)
        assert published.returncode == 0, published.stderr
        env2 = token_cargo(tmp_path / "work2", _R(index_url), "gad_wrong")  # type: ignore[arg-type]
        crate2 = env2.new_crate("tok-cli2")
        refused = env2.publish(crate2)
        assert refused.returncode != 0
        assert "403" in refused.stderr and "not known to this registry" in refused.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()
