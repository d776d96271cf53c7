"""The demo registry's bearer-token mode (crates.io-style), over HTTP and with the real cargo;
and its conditional index answers (ETag / Last-Modified -> 304)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import KeyPair
from registry_tools import (
    bearer_publish,
    call,
    http_publish,
    run_cli,
)

from gui_approver.registry.server import DemoRegistry, index_path, issue_token, token_digest


@pytest.fixture(scope="module")
def kp() -> KeyPair:
    return KeyPair()


@pytest.fixture
def treg(tmp_path: Path) -> Iterator[DemoRegistry]:
    with DemoRegistry(tmp_path / "data", token_mode=True) as registry:
        yield registry


def test_issued_token_is_stored_only_as_its_digest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = issue_token(data, "alice", "ci")
    assert token.startswith("gad_") and len(token) > 40
    path = data / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert token not in text and token[4:] not in text
    (item,) = json.loads(text)["tokens"]
    assert item["sha256"] == token_digest(token)
    assert item["login"] == "alice" and item["name"] == "ci" and item["revoked_at"] is None
    assert issue_token(data) != token  # fresh every time
    with pytest.raises(ValueError, match="invalid login"):
        issue_token(data, "bad login")


def test_bearer_publish_yank_and_owner(treg: DemoRegistry) -> None:
    token = treg.issue_token("alice")
    status, doc = bearer_publish(treg, token, "tok", "0.1.0")
    assert status == 200, doc
    assert treg.accepted_tokens == [token]
    assert treg.owners("tok") == ["alice"]
    # crates.io also takes "Bearer <token>"
    bearer = {"Authorization": f"Bearer {token}"}
    assert call(treg, "DELETE", "/api/v1/crates/tok/0.1.0/yank", headers=bearer).status == 200
    assert treg.crates()["tok"][0]["yanked"] is True
    owners = call(treg, "GET", "/api/v1/crates/tok/owners", headers={"Authorization": token})
    assert owners.json()["users"][0]["login"] == "alice"


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (None, "this action requires authentication"),
        ("gad_unknown", "authentication failed: the token is not known to this registry"),
    ],
)
def test_missing_or_unknown_token_is_403_in_crates_io_shape(
    treg: DemoRegistry, token: str | None, detail: str
) -> None:
    treg.issue_token()
    status, doc = bearer_publish(treg, token, "tok", "0.1.0")
    assert status == 403
    assert doc == {"errors": [{"detail": detail}]}
    assert treg.crates() == {}


def test_asymmetric_token_is_refused_in_token_mode(treg: DemoRegistry, kp: KeyPair) -> None:
    treg.add_key(kp.registered())
    assert http_publish(treg, kp, "tok", "0.1.0").status == 403
    assert treg.crates() == {}


def test_revoke_current_token(treg: DemoRegistry) -> None:
    token, other = treg.issue_token("alice"), treg.issue_token("bob")
    assert bearer_publish(treg, token, "rev", "0.1.0")[0] == 200
    reply = call(treg, "DELETE", "/api/v1/tokens/current", headers={"Authorization": token})
    assert reply.status == 204 and reply.body == b""
    assert "Content-Length" not in reply.headers
    status, doc = bearer_publish(treg, token, "rev", "0.2.0")
    assert status == 403
    assert doc == {"errors": [{"detail": "authentication failed: the token has been revoked"}]}
    again = call(treg, "DELETE", "/api/v1/tokens/current", headers={"Authorization": token})
    assert again.status == 403
    assert call(treg, "DELETE", "/api/v1/tokens/current").status == 403
    # only the presented token is revoked
    assert bearer_publish(treg, other, "rev", "0.2.0")[0] == 200
    items = json.loads((treg.data_dir / "tokens.json").read_text())["tokens"]
    assert [i["revoked_at"] is not None for i in items] == [True, False]
    assert [v["vers"] for v in treg.crates()["rev"]] == ["0.1.0", "0.2.0"]


def test_tokens_endpoint_does_not_exist_in_asymmetric_mode(tmp_path: Path) -> None:
    with DemoRegistry(tmp_path / "d") as reg:
        assert call(reg, "DELETE", "/api/v1/tokens/current").status == 404


def test_auth_required(tmp_path: Path) -> None:
    with DemoRegistry(tmp_path / "d", token_mode=True, auth_required=True) as reg:
        token = reg.issue_token()
        anon = call(reg, "GET", "/index/config.json")
        assert anon.status == 401
        assert anon.headers["WWW-Authenticate"].startswith("Cargo login_url=")
        config = call(reg, "GET", "/index/config.json", headers={"Authorization": token})
        assert config.status == 200
        assert config.json() == {
            "dl": f"{reg.api_url}/api/v1/crates",
            "api": reg.api_url,
            "auth-required": True,
        }
        assert bearer_publish(reg, token, "priv", "0.1.0")[0] == 200
        path = "/index/" + index_path("priv")
        assert call(reg, "GET", path).status == 401
        assert call(reg, "GET", path, headers={"Authorization": "gad_nope"}).status == 403
        assert call(reg, "GET", path, headers={"Authorization": token}).status == 200
        dl = "/api/v1/crates/priv/0.1.0/download"
        assert call(reg, "GET", dl).status == 401
        assert call(reg, "GET", dl, headers={"Authorization": token}).body == b"crate"
    with pytest.raises(ValueError, match="token mode"):
        DemoRegistry(tmp_path / "e", auth_required=True)


def test_config_json_without_auth_required(treg: DemoRegistry) -> None:
    assert "auth-required" not in call(treg, "GET", "/index/config.json").json()


# ------------------------------------------------------------------ conditional index


@pytest.mark.parametrize("mode", ["asymmetric", "token"])
def test_index_etag_and_last_modified(tmp_path: Path, kp: KeyPair, mode: str) -> None:
    with DemoRegistry(tmp_path / "d", keys=[kp.registered()], token_mode=mode == "token") as reg:
        token = reg.issue_token()

        def publish(vers: str) -> None:
            if mode == "token":
                assert bearer_publish(reg, token, "cond", vers)[0] == 200
            else:
                assert http_publish(reg, kp, "cond", vers).status == 200

        publish("0.1.0")
        path = "/index/" + index_path("cond")
        first = call(reg, "GET", path)
        etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
        assert first.status == 200 and etag.startswith('"') and modified.endswith("GMT")
        for headers in (
            {"If-None-Match": etag},
            {"If-None-Match": f'"other", W/{etag}'},
            {"If-Modified-Since": modified},
        ):
            again = call(reg, "GET", path, headers=headers)
            assert again.status == 304, headers
            assert again.body == b""
            assert again.headers["ETag"] == etag
        # If-None-Match wins over If-Modified-Since
        both = {"If-None-Match": '"stale"', "If-Modified-Since": modified}
        assert call(reg, "GET", path, headers=both).status == 200
        # a change in the same second still moves Last-Modified on
        publish("0.2.0")
        changed = call(reg, "GET", path, headers={"If-Modified-Since": modified})
        assert changed.status == 200
        assert b'"0.2.0"' in changed.body
        assert changed.headers["Last-Modified"] != modified
        assert call(reg, "GET", path, headers={"If-None-Match": etag}).status == 200
        # config.json too
        cfg = call(reg, "GET", "/index/config.json")
        for headers in (
            {"If-None-Match": cfg.headers["ETag"]},
            {"If-Modified-Since": cfg.headers["Last-Modified"]},
        ):
            assert call(reg, "GET", "/index/config.json", headers=headers).status == 304
        assert call(reg, "GET", path, headers={"If-Modified-Since": "garbage"}).status == 200
        assert [s.status for s in reg.served][-2:] == [304, 200]


# ------------------------------------------------------------------------------ CLI


def test_cli_issue_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    argv = ["demo-registry-key", "--data", str(data), "--token", "--subject", "alice"]
    assert run_cli(argv) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert out == token + "\n" and token.startswith("gad_")
    assert token not in err and token_digest(token)[:8] in err and "alice" in err
    assert json.loads((data / "tokens.json").read_text())["tokens"][0]["login"] == "alice"
    with pytest.raises(SystemExit):
        run_cli(["demo-registry-key", "--data", str(data), "--token", "--key", "k3.public.x"])
    with pytest.raises(SystemExit):
        run_cli(["demo-registry-key", "--data", str(data)])


def test_cli_auth_required_needs_token_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["demo-registry", "--data", str(tmp_path), "--auth-required"]) == 2
    assert "token mode" in capsys.readouterr().err


# ------------------------------------------------------------------ the real cargo (e2e)
