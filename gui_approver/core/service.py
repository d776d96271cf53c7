"""The signing service: turns one cargo request into one cargo answer. Qt-free.

Every mutation goes through the injected :class:`~gui_approver.core.approval.Approver` (or the
explicit ``--auto-approve-loopback`` policy) before the key is touched; any doubt denies.

Every decision is recorded in the :class:`~gui_approver.core.audit.AuditLog` (fsync-ed) before a
token leaves the service; a token whose record cannot be written is thrown away and the
request denied.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from gui_approver.client import protocol
from gui_approver.client.framing import IpcRequest, Provenance
from gui_approver.client.protocol import CredentialRequest, Get, Login, Logout, Publish
from gui_approver.core import ipc
from gui_approver.core.approval import (
    Action,
    ApprovalRequest,
    Approver,
    Decision,
    decide_safely,
    is_loopback_index,
)
from gui_approver.core.audit import AuditError, AuditLog, Verdict, token_fingerprint
from gui_approver.core.keys.bearer import TokenRecord, bearer_store, check_token, fingerprint
from gui_approver.core.keys.history_mac import HistoryMac
from gui_approver.core.keys.store import (
    CRATES_IO_REFUSAL,
    KeyRecord,
    KeyStore,
    SigningKey,
    is_crates_io,
)
from gui_approver.core.release import Credential, ReleasePolicy, placeholder
from gui_approver.core.settings import Settings
from gui_approver.errors import ConfigError, GuiApproverError, KeyExists
from gui_approver.review.contents import CrateContents
from gui_approver.review.history import History
from gui_approver.review.request import (
    BatchApproval,
    Candidate,
    Inspector,
    RequestReview,
    WorkspaceReview,
    run_key_for_pid,
)
from gui_approver.review.requester import RequesterInfo
from gui_approver.secret import Secret

log = logging.getLogger(__name__)

#: Called only just before asking a human: an event set when the requester hangs up (cargo
#: interrupted), so a pending dialog can be withdrawn. Reads never pay for watching.
Watch = Callable[[], threading.Event]


def _gone(watch: Watch | None) -> threading.Event | None:
    return watch() if watch is not None else None


@dataclass(frozen=True)
class Outcome:
    """What the app answers to one request."""

    response: dict[str, Any]
    notice: str | None = None


@dataclass(frozen=True)
class SignEvent:
    """Reported after each decision (for notifications and the audit log). No secrets."""

    request: CredentialRequest
    provenance: Provenance
    decision: Verdict  # SIGNED, DENIED or ERROR
    reason: str
    kip: str | None


class SigningService:
    def __init__(
        self,
        store: KeyStore,
        approver: Approver,
        settings: Settings | None = None,
        *,
        auto_approve_loopback: bool = False,
        on_event: Callable[[SignEvent], None] | None = None,
        audit: AuditLog | Literal["default"] | None = "default",
        inspector: Inspector | Literal["default"] | None = "default",
    ) -> None:
        """``audit``: where decisions are recorded; ``"default"`` is the user's audit log
        (``audit.jsonl`` in the state dir); ``None`` records nothing (unit tests of code above
        the service only).

        ``inspector``: builds the review the approver shows for each mutation that needs a
        human (never for reads or auto-approved requests), keeps the history of approved
        publishes and the workspace batch; ``"default"`` uses the user's history
        (``Settings.history_size_mb``); ``None`` disables all of that."""
        self.store = store
        self.approver = approver
        self.settings = settings or Settings()
        self.auto_approve_loopback = auto_approve_loopback
        self.on_event = on_event
        if audit == "default":
            audit = AuditLog()
        self.audit: AuditLog | None = audit
        if inspector == "default":
            inspector = Inspector(
                History.from_settings(
                    self.settings.history_size_mb, mac=HistoryMac(store.keychain)
                ),
                WorkspaceReview(BatchApproval(300)),
            )
        self.inspector: Inspector | None = inspector
        #: which credential a registry has and how it is released (key or bearer token)
        self.release = ReleasePolicy(store, bearer_store(store))
        self._pending = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------
    def handle(
        self,
        request: CredentialRequest,
        provenance: Provenance,
        *,
        watch: Watch | None = None,
    ) -> Outcome:
        """``watch()``, called only before asking a human, returns an event the transport
        sets when the requester disconnects while waiting."""
        try:
            match request:
                case Get():
                    return self._get(request, provenance, watch)
                case Login():
                    return self._login(request, provenance, watch)
                case Logout():
                    return self._logout(request, provenance, watch)
        except GuiApproverError as exc:
            log.warning("%s failed: %s", request.describe(), exc)
            self._record_quietly(request, provenance, Verdict.ERROR, str(exc), None)
            self._emit(request, provenance, Verdict.ERROR, str(exc), None)
            return Outcome(protocol.cargo_error(exc))
        except Exception as exc:
            log.exception("internal error handling %s", request.describe())
            reason = f"internal error ({type(exc).__name__})"
            self._record_quietly(request, provenance, Verdict.ERROR, reason, None)
            return Outcome(protocol.err_other(f"gui-approver: {reason}"))

    # ------------------------------------------------------------------------------------
    def _record(
        self,
        request: CredentialRequest,
        prov: Provenance,
        decision: Verdict,
        reason: str,
        kip: str | None,
        *,
        token: str | None = None,
    ) -> None:
        """Append one audit record (fsync-ed); raise AuditError when it cannot be written."""
        if self.audit is None:
            return
        self.audit.record(
            event=request.kind,
            registry=request.registry.name,
            index_url=request.registry.index_url,
            operation=request.operation.op if isinstance(request, Get) else None,
            crate=request.name if isinstance(request, Get) else None,
            version=request.vers if isinstance(request, Get) else None,
            cksum=request.cksum if isinstance(request, Get) else None,
            decision=decision,
            reason=reason,
            requester=prov.to_json(),
            key_id=kip,
            token_sha256=token_fingerprint(token) if token is not None else None,
        )

    def _record_quietly(
        self,
        request: CredentialRequest,
        prov: Provenance,
        decision: Verdict,
        reason: str,
        kip: str | None,
    ) -> None:
        """Record a decision that releases nothing (a denial, an error): best effort."""
        try:
            self._record(request, prov, decision, reason, kip)
        except AuditError as exc:
            log.warning("could not record a %s decision: %s", decision, exc)
        except Exception:
            log.exception("could not record a %s decision", decision)

    # ------------------------------------------------------------------------------------
    def _emit(
        self,
        request: CredentialRequest,
        prov: Provenance,
        decision: Verdict,
        reason: str,
        kip: str | None,
    ) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(SignEvent(request, prov, decision, reason, kip))
        except Exception:
            log.exception("event handler failed")

    def _approve(
        self, approval: ApprovalRequest, *, inspect: bool = False
    ) -> tuple[Decision, ApprovalRequest]:
        """Ask the approver (after inspecting the request, when ``inspect``); returns the
        decision and the approval request as asked (with its review)."""
        with self._lock:
            if self._pending >= self.settings.max_pending:
                return Decision.deny(
                    f"too many requests are waiting for approval ({self.settings.max_pending}); "
                    "this one was denied to stop prompt flooding"
                ), approval
            self._pending += 1
        try:
            if inspect and self.inspector is not None:
                approval = replace(
                    approval, review=self._review(approval.request, approval.provenance)
                )
            return decide_safely(self.approver, approval), approval
        finally:
            with self._lock:
                self._pending -= 1

    def _review(self, request: CredentialRequest, prov: Provenance) -> RequestReview:
        """The inspector's review (bounded, never raises); any failure: "could not verify".
        ``prov.pid`` is the kernel's SO_PEERCRED pid (ipc.py replaces the claimed one)."""
        assert self.inspector is not None
        try:
            return self.inspector.review(request, prov, prov.pid)
        except Exception as exc:  # Inspector.review never raises; be sure
            log.exception("inspecting %s failed", request.describe())
            reason = f"internal error ({type(exc).__name__})"
            contents = None
            if isinstance(request, Get) and isinstance(request.operation, Publish):
                op = request.operation
                contents = CrateContents(op.name, op.vers, op.cksum, False, reason)
            return RequestReview(
                request,
                RequesterInfo(
                    verified=False,
                    summary=f"requester could not be verified: {reason}",
                    pid=prov.pid,
                    pid_source="kernel" if prov.pid else "none",
                ),
                contents,
            )

    def _take_batch(self, request: Get, prov: Provenance) -> tuple[bool, Candidate | None]:
        """Consume this publish's entry of a workspace list the user approved, if any."""
        inspector = self.inspector
        if (
            inspector is None
            or inspector.workspace is None
            or not isinstance(request.operation, Publish)
        ):
            return False, None
        try:
            taken = inspector.workspace.batch.take(request, run=run_key_for_pid(prov.pid))
        except Exception:  # no match: the normal dialog
            log.exception("workspace batch lookup failed")
            return False, None
        if taken is None:
            return False, None
        return True, taken[1]

    def _approve_all(self, request: Get, review: RequestReview | None) -> None:
        inspector = self.inspector
        if review is None or not review.batch or inspector is None or inspector.workspace is None:
            return
        if not review.requester.verified:  # the dialog offers no "Approve all" then either
            log.warning(
                "ignored 'approve all' for %s: the requester is not a verified cargo process",
                request.describe(),
            )
            return
        try:
            keys = inspector.workspace.approve_all(request, review.batch, review.requester)
            log.info(
                "approved %d more crate(s) of the workspace list of %s",
                len(keys),
                request.describe(),
            )
        except Exception:  # without the list: one dialog each
            log.exception("could not remember the approved workspace list")

    def _record_history_later(
        self,
        request: Get,
        review: RequestReview | None,
        candidate: Candidate | None,
        batched: bool,
    ) -> None:
        """Add a signed publish to the history, off the signing path."""
        inspector = self.inspector
        if inspector is None or not isinstance(request.operation, Publish):
            return
        if batched:
            if candidate is None:
                return

            def work() -> None:
                inspector.record_candidate(request, candidate)
        else:
            if review is None:
                return
            reviewed = review

            def work() -> None:
                inspector.record_approved(reviewed)

        try:
            threading.Thread(target=work, name="gui-approver-history", daemon=True).start()
        except Exception:  # a missing history entry loses a comparison only
            log.exception("could not record the history")

    def end_batches(self) -> None:
        """Forget every approved workspace list (screen locked, app quitting)."""
        if self.inspector is not None and self.inspector.workspace is not None:
            self.inspector.workspace.end()

    def _get(self, request: Get, prov: Provenance, watch: Watch | None) -> Outcome:
        cred = self.release.find(request.registry.index_url)
        if cred is None:
            log.info("no key for %s: not-found", request.registry.index_url)
            return Outcome(protocol.err_not_found())
        record = cred.record
        mutation = request.is_mutation
        if self.release.placeholder_read(cred, request):
            # cargo asks for a read before every publish and sends it nowhere: never the token
            log.info("read for %s answered with the placeholder", request.registry.label())
            return Outcome(protocol.ok_get(placeholder(), "session"))
        # A hardware key whose token is not logged in asks for its PIN: never for a request
        # the user has not approved, so such a read shows the dialog first (with nobody to
        # ask the PIN, signing fails below with how to unlock it).
        needs_approval = (
            mutation
            or self.release.read_needs_approval(cred, self.settings)
            or (
                cred.key is not None
                and self.store.needs_login(cred.key)
                and self.store.unlocker is not None
            )
        )
        review: RequestReview | None = None
        batched, candidate = False, None
        auto = False
        if needs_approval:
            if (
                mutation
                and self.auto_approve_loopback
                and is_loopback_index(request.registry.index_url)
            ):
                auto = True
                decision = Decision.approve("auto-approved (--auto-approve-loopback)")
            else:
                if mutation:
                    batched, candidate = self._take_batch(request, prov)
                if batched:
                    decision = Decision.approve("approved as part of the reviewed workspace list")
                else:
                    decision, asked = self._approve(
                        ApprovalRequest(
                            request=request,
                            provenance=prov,
                            key=record,
                            timeout=self.settings.approval_timeout,
                            gone=_gone(watch),
                            bearer=cred.bearer,
                        ),
                        inspect=mutation,
                    )
                    review = asked.review
                    if decision.approved and decision.approve_all:
                        self._approve_all(request, review)
            if not decision.approved:
                message = f"{request.describe()} was denied in gui-approver ({decision.reason})"
                log.info("%s", message)
                self._record_quietly(request, prov, Verdict.DENIED, decision.reason, cred.kid)
                self._emit(request, prov, Verdict.DENIED, decision.reason, cred.kid)
                return Outcome(protocol.err_other(message))
            reason = decision.reason
        elif cred.kind == "token":
            reason = "read (the user allowed reads without a dialog)"
        else:
            reason = "read (signed without asking)"
        # Only a use a human approved restarts a passphrase key's idle clock.
        token = self.release.release(
            cred, request, approved=needs_approval and not auto, may_ask=needs_approval
        )
        try:
            # Durable before the token leaves: a token that is not on record is never released.
            self._record(request, prov, Verdict.SIGNED, reason, cred.kid, token=token)
        except AuditError as exc:
            del token
            log.error("%s: not released, the audit log failed: %s", request.describe(), exc)
            self._emit(request, prov, Verdict.ERROR, str(exc), cred.kid)
            return Outcome(
                protocol.cargo_error(
                    AuditError(
                        f"{request.describe()} was denied because the decision could not be "
                        f"recorded: {exc}",
                        hint=exc.hint,
                    )
                )
            )
        cache = self.release.cache(cred, mutation)
        log.info(
            "%s %s for %s with %s",
            "released" if cred.kind == "token" else "signed",
            request.describe(),
            request.registry.label(),
            cred.kid,
        )
        self._emit(
            request, prov, Verdict.SIGNED, "approved" if needs_approval else "read", cred.kid
        )
        if mutation:
            self._record_history_later(request, review, candidate, batched)
        return Outcome(protocol.ok_get(token, cache))

    # -- login / logout: every one is approved in a dialog that says what will happen -------
    def _ask(
        self,
        request: CredentialRequest,
        prov: Provenance,
        action: Action,
        detail: str,
        key: KeyRecord | None,
        *,
        watch: Watch | None,
        bearer: TokenRecord | None = None,
    ) -> Decision:
        decision, _asked = self._approve(
            ApprovalRequest(
                request=request,
                provenance=prov,
                key=key,
                action=action,
                detail=detail,
                bearer=bearer,
                timeout=self.settings.approval_timeout,
                gone=_gone(watch),
            )
        )
        return decision

    def _login(self, request: Login, prov: Provenance, watch: Watch | None) -> Outcome:
        index_url = request.registry.index_url
        registry = request.registry.name or index_url
        crates_io = is_crates_io(request.registry.name, index_url)
        given_key: SigningKey | None = None
        given_token: Secret | None = None
        if request.token is not None:
            if request.token.expose().strip().startswith("k3."):
                try:
                    given_key = SigningKey.from_paserk(request.token)
                except ValueError as exc:
                    return Outcome(
                        protocol.err_other(
                            f"gui-approver: the token given to `cargo login` is not a usable key "
                            f"({exc})",
                            [
                                "gui-approver keeps asymmetric keys; run `cargo login` without a "
                                "token to generate one"
                            ],
                        )
                    )
            else:
                given_token = check_token(request.token)
        existing = self.release.find(index_url)
        if crates_io and (given_key is not None or (given_token is None and existing is None)):
            raise ConfigError(
                CRATES_IO_REFUSAL + "; nothing was stored",
                hint="pass your crates.io token: cargo login --registry "
                "crates-io, or better (it never crosses the socket): "
                "gui-approver token add --registry crates-io",
            )
        if existing is not None:
            return self._login_existing(request, existing, given_key, given_token)
        if given_token is not None:
            detail = (
                f"store the bearer token sha256:{fingerprint(given_token)} given to "
                f"`cargo login` for registry {registry} in the keychain"
            )
        elif given_key is not None:
            detail = (
                f"import the asymmetric key {given_key.kip} given to `cargo login` "
                f"for registry {registry}"
            )
        else:
            detail = f"generate a new asymmetric key for registry {registry}"
        decision = self._ask(request, prov, Action.LOGIN, detail, None, watch=watch)
        if not decision.approved:
            self._record_quietly(request, prov, Verdict.DENIED, decision.reason, None)
            return Outcome(
                protocol.err_other(
                    f"gui-approver: `cargo login` for {registry} was denied ({decision.reason}); "
                    "nothing was stored"
                )
            )
        if given_token is not None:
            rec = self.release.tokens.add(
                given_token, registry=registry, index_url=index_url, origin="dialog"
            )
            self._record_quietly(
                request,
                prov,
                Verdict.TOKEN_STORED,
                decision.reason,
                f"bearer:sha256:{rec.fingerprint}",
            )
            return Outcome(
                protocol.ok_login(),
                (
                    f"gui-approver: stored the bearer token for {registry} in the keychain "
                    f"(sha256:{rec.fingerprint}); every publish now asks first.\n"
                    "gui-approver: next time, `gui-approver token add` stores a token without "
                    "passing it through cargo and the app's socket."
                ),
            )
        subject = _subject_from_args(request.args)
        key = given_key or SigningKey.generate()
        record = self.store.add(
            key, registry=registry, index_url=index_url, subject=subject, origin="dialog"
        )
        note = "imported the given key" if given_key else "generated a new key"
        self._record_quietly(request, prov, Verdict.KEY_CREATED, note, record.kip)
        notice = (
            f"gui-approver: registry {registry} {note}; its public key is\n{record.public}\n"
            f"(key id {record.kip}). Register this public key with the registry."
        )
        if given_key is not None:
            notice += (
                "\ngui-approver: next time, `gui-approver key import-cargo` stores a key "
                "without passing it through cargo and the app's socket."
            )
        return Outcome(protocol.ok_login(), notice)

    def _login_existing(
        self,
        request: Login,
        existing: Credential,
        given_key: SigningKey | None,
        given_token: Secret | None,
    ) -> Outcome:
        label = existing.record.registry
        if existing.kind == "token":
            assert existing.bearer is not None
            if given_key is not None:
                raise KeyExists(
                    f"registry {label} takes a bearer token; it already has one "
                    f"(sha256:{existing.bearer.fingerprint})"
                )
            if given_token is not None and fingerprint(given_token) != existing.bearer.fingerprint:
                raise KeyExists(
                    f"registry {label} already has a different bearer token "
                    f"(sha256:{existing.bearer.fingerprint})",
                    hint=f"replace it: gui-approver token rotate --registry {label}",
                )
            what = f"bearer token sha256:{existing.bearer.fingerprint}"
            trusted = existing.bearer.trusted
        else:
            assert existing.key is not None
            if given_token is not None:
                raise KeyExists(
                    f"registry {label} uses an asymmetric key ({existing.key.kip}); "
                    "it takes no bearer token"
                )
            if given_key is not None and given_key.kip != existing.key.kip:
                raise KeyExists(
                    f"registry {label} already has a different key ({existing.key.kip})",
                    hint=f"delete it first: gui-approver key delete --registry {label}",
                )
            what = f"key {existing.key.kip}"
            trusted = existing.key.trusted
        if not trusted:
            # Planted or from before origins were recorded: never offered as "already has".
            raise KeyExists(
                f"registry {label} has a {what} that was not created through a gui-approver "
                "dialog or its CLI; gui-approver does not offer it",
                hint=f"check it with `gui-approver key list`; if you do not know it, delete it "
                f"({'token' if existing.kind == 'token' else 'key'} delete --registry "
                f"{label}) and log in again",
            )
        if existing.kind == "token":
            return Outcome(
                protocol.ok_login(), f"gui-approver: registry {label} already has its {what}."
            )
        assert existing.key is not None
        return Outcome(
            protocol.ok_login(),
            (
                f"gui-approver: registry {label} already has a key; its public key is\n"
                f"{existing.key.public}\n(key id {existing.key.kip}). Register this public key "
                "with the registry."
            ),
        )

    def _logout(self, request: Logout, prov: Provenance, watch: Watch | None) -> Outcome:
        cred = self.release.find(request.registry.index_url)
        if cred is None:
            return Outcome(protocol.err_not_found())
        record = cred.record
        if cred.kind == "token":
            assert cred.bearer is not None
            detail = (
                f"delete the bearer token sha256:{cred.bearer.fingerprint} of registry "
                f"{record.registry} from the keychain"
            )
        else:
            detail = f"delete the key {record.kip} of registry {record.registry}"
        decision = self._ask(
            request, prov, Action.LOGOUT, detail, record, watch=watch, bearer=cred.bearer
        )
        if not decision.approved:
            self._record_quietly(request, prov, Verdict.DENIED, decision.reason, cred.kid)
            return Outcome(
                protocol.err_other(
                    f"deleting the {'token' if cred.kind == 'token' else 'key'} for "
                    f"{record.registry} was denied in gui-approver ({decision.reason})"
                )
            )
        try:
            self._record(request, prov, Verdict.KEY_DELETED, decision.reason, cred.kid)
        except AuditError as exc:
            return Outcome(
                protocol.cargo_error(
                    AuditError(
                        f"the key for {record.registry} was not deleted because the decision could "
                        f"not be recorded: {exc}",
                        hint=exc.hint,
                    )
                )
            )
        if cred.bearer is not None:
            self.release.tokens.delete(cred.bearer)
            return Outcome(
                protocol.ok_logout(),
                (
                    f"gui-approver: deleted the bearer token sha256:{cred.bearer.fingerprint}; it "
                    "still works at the registry until you revoke it there"
                ),
            )
        self.store.delete(record)
        return Outcome(protocol.ok_logout(), f"gui-approver: deleted the key {record.kip}")


def ipc_handler(service: SigningService) -> ipc.Handler:
    """Adapt the service to :class:`gui_approver.core.ipc.UnixSocketServer`."""

    def handle(message: IpcRequest, send_ack: ipc.Ack) -> tuple[dict[str, object], str | None]:
        assert message.request is not None
        send_ack(service.settings.approval_timeout + 5.0)
        outcome = service.handle(message.request, message.provenance, watch=send_ack.watch)
        return outcome.response, outcome.notice

    return handle


def _subject_from_args(args: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--key-subject" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--key-subject="):
            return arg.split("=", 1)[1]
    return None


__all__ = ["KeyRecord", "Outcome", "SignEvent", "SigningService"]
