"""The money endpoints over HTTP: `POST /redemptions` and `POST /refunds`.

In this order: Idempotency-Key present, caller attestation, media type, body shape (strict
JSON and its schema), then the idempotency record — a replay answers what was answered, a
request in flight is refused — and only then the processing (mocks/orchestrator/
_redemption.py), whose charge, record and recorded answer commit together. Processing runs
in worker threads, so that guarantee rests on the store's transaction, as it would in a real
deployment, and not on the event loop happening to run one handler at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from mocks._core.http import HTTPProblem, json_response, parse_json_object, read_body
from mocks.faults import FaultSet
from mocks.orchestrator._callers import Callers, Claim, UnknownKey
from mocks.orchestrator._idempotency import Begun, Conflict, IdempotencyLedger, InFlight, Replay
from mocks.orchestrator._redemption import Answer, Redemptions
from mocks.orchestrator._settings import OrchestratorSettings
from spec.profiles import Profile
from spec.schemas import default_store
from wire import strictjson
from wire.envelopes import PROBLEM_JSON, problem

__all__ = ["MoneyEndpoints", "problem_response"]

Process = Callable[[str, dict[str, Any]], Answer]


def problem_response(error: HTTPProblem) -> Response:
    """An RFC 9457 problem document with a `code` member (schemas/app-next/problem)."""
    body = problem(error.status, error.code, error.message)
    body.update(error.extra)
    return json_response(body, error.status, error.headers, media_type=PROBLEM_JSON)


class MoneyEndpoints:
    def __init__(
        self,
        *,
        spec: Profile,
        faults: FaultSet,
        callers: Callers,
        idempotency: IdempotencyLedger,
        redemptions: Redemptions,
        settings: OrchestratorSettings,
    ) -> None:
        self.spec = spec
        self.faults = faults
        self.callers = callers
        self.idempotency = idempotency
        self.redemptions = redemptions
        self.settings = settings
        """Read at each request: tests set `before_charge` on a running mock."""
        self._schemas = default_store()

    async def redeem(self, request: Request) -> Response:
        return await self._money(request, "redemptions", self.redemptions.redeem)

    async def refund(self, request: Request) -> Response:
        if self.faults.active("refund-endpoint-missing"):
            # The metadata still names refund_endpoint: false advertising.
            return json_response({"error": "not_found"}, 404)
        return await self._money(request, "refunds", self.redemptions.refund)

    async def _money(self, request: Request, endpoint: str, process: Process) -> Response:
        with self.redemptions.ledger.arriving():
            try:
                return await self._idempotent(request, endpoint, process)
            except HTTPProblem as error:
                response = problem_response(error)
                if self.faults.active("redemption-errors-plain-json"):
                    response.headers["content-type"] = "application/json"
                return response

    async def _idempotent(self, request: Request, endpoint: str, process: Process) -> Response:
        raw = await read_body(request)
        key = self._idempotency_key(request)
        content_type = request.headers.get("content-type")
        admit = partial(self._admit, raw, content_type, endpoint, key, process)
        # One worker-thread hop does the blocking part (verifying, the idempotency record,
        # charging): each hop costs as much as a signature check.
        try:
            claim = await self.callers.claim(request)
            admitted = await anyio.to_thread.run_sync(partial(admit, claim, keys_fresh=False))
        except UnknownKey:  # a key the cached set lacks: the provider may have rotated
            claim = await self.callers.claim(request, refresh=True)
            admitted = await anyio.to_thread.run_sync(partial(admit, claim, keys_fresh=True))
        if isinstance(admitted, Response):
            return admitted
        return await self._settle_after_hold(endpoint, raw, admitted)

    def _idempotency_key(self, request: Request) -> str | None:
        key = request.headers.get("idempotency-key")
        if key is None and not self.faults.active("idempotency-key-optional"):
            raise HTTPProblem(
                400, "idempotency_key_required", "the Idempotency-Key header is required"
            )
        if (
            key is not None
            and not 1 <= len(key) <= 255
            and not (self.faults.active("idempotency-key-length-unchecked") and key)
        ):
            raise HTTPProblem(400, "invalid_request", "Idempotency-Key must be 1 to 255 characters")
        return key

    def _admit(
        self,
        raw: bytes,
        content_type: str | None,
        endpoint: str,
        key: str | None,
        process: Process,
        claim: Claim,
        *,
        keys_fresh: bool,
    ) -> Response | _Held:
        """In a worker thread: the caller verified, the body checked, the key's record
        begun, and (unless a test holds it) the work done and settled; the answer, or the
        begun work to settle once `before_charge` lets it."""
        refused: HTTPProblem | None = None
        # One store transaction for the attestation's replay record and the key's record
        # (one commit, not two); it commits when the request is refused too, as two did.
        with self.redemptions.store.transaction():
            try:
                caller = self.callers.verify(claim, raw, keys_fresh=keys_fresh)
                body = self._checked_body(raw, content_type, endpoint)
                # Keys are scoped to the authenticated caller (draft-ietf-httpapi-idempotency-
                # key-header §2: a composite key): no provider can replay another's answer.
                scope = "" if self.faults.active("idempotency-keys-not-scoped") else caller
                outcome = None if key is None else self.idempotency.begin(scope, endpoint, key, raw)
            except HTTPProblem as problem:
                refused = problem
        if refused is not None:
            raise refused
        if key is None or outcome is None:
            return _answer(*process(caller, body))
        if isinstance(outcome, Conflict) and not self.faults.active("idempotency-conflict-ignored"):
            raise HTTPProblem(
                422, "idempotency_conflict", "this Idempotency-Key was used with another body"
            )
        if isinstance(outcome, InFlight):
            if self.faults.active("idempotency-in-flight-reprocessed"):
                return _answer(*process(caller, body))
            raise _in_flight()
        if isinstance(outcome, Replay):
            if self.faults.active("replay-double-charges"):
                # the original answer, replayed, and its amount charged again
                self.redemptions.charge_again(outcome.body)
            return _answer(outcome.status, outcome.body, replayed=True)
        if not isinstance(outcome, Begun):
            return _answer(*process(caller, body))  # idempotency-conflict-ignored: again
        held = _Held(scope, key, partial(process, caller, body))
        if self.settings.before_charge is not None:
            return held
        return self._settle(endpoint, raw, held)

    def _checked_body(self, raw: bytes, content_type: str | None, endpoint: str) -> dict[str, Any]:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not self.faults.active("redemption-any-content-type"):
            shown = "none" if content_type is None else repr(media[:100])
            raise HTTPProblem(
                415, "unsupported_media_type", f"the body must be application/json, not {shown}"
            )
        return self._parse_body(raw, endpoint)

    async def _settle_after_hold(self, endpoint: str, raw: bytes, held: _Held) -> Response:
        """The `before_charge` seam: the key is taken, the charge waits for the test."""
        try:
            before_charge = self.settings.before_charge
            if before_charge is not None:
                await before_charge()
        except BaseException:
            # Nothing was recorded under the key: release it so the request can be retried.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(
                    self.idempotency.abandon, held.scope, endpoint, held.key
                )
            raise
        return await anyio.to_thread.run_sync(self._settle, endpoint, raw, held)

    def _settle(self, endpoint: str, raw: bytes, held: _Held) -> Response:
        """Do the work and record its answer; the charge, the redemption record and the
        recorded answer commit together."""
        try:
            settled = self.idempotency.settle(
                held.scope,
                endpoint,
                held.key,
                raw,
                held.work,
                transaction=self.redemptions.transaction,
            )
        except BaseException:
            # Nothing was recorded under the key: release it so the request can be retried.
            self.idempotency.abandon(held.scope, endpoint, held.key)
            raise
        if isinstance(settled, InFlight):
            raise _in_flight()
        return _answer(settled.status, settled.body, replayed=settled.replayed)

    def _parse_body(self, raw: bytes, endpoint: str) -> dict[str, Any]:
        """The request body, strictly parsed and checked against its schema (400 otherwise)."""
        if self.faults.active("redemption-deep-body-crashes"):
            # "validates" with a recursive parser that has no depth limit first
            try:
                json.loads(raw)
            except RecursionError:
                raise HTTPProblem(500, "server_error", "the mock orchestrator failed") from None
            except ValueError:
                pass
        try:
            body = parse_json_object(raw)
        except HTTPProblem:
            loose = _last_duplicate_wins(raw)
            if loose is None or not self.faults.active("redemption-duplicate-keys-last-wins"):
                raise
            body = loose
        if endpoint == "redemptions":
            self._currency_faults(body)
        message = "redemption_request" if endpoint == "redemptions" else "refund_request"
        issues = self._schemas.validate(self.spec.name, message, body)
        if (
            endpoint == "redemptions"
            and body.get("amount") == 0
            and self.faults.active("redemption-zero-amount-accepted")
        ):
            issues = [issue for issue in issues if issue.path != "/amount"]
        if issues:
            raise HTTPProblem(
                400, "invalid_request", f"{issues[0].path or '/'}: {issues[0].message}"
            )
        return body

    def _currency_faults(self, body: dict[str, Any]) -> None:
        currency = body.get("currency")
        if isinstance(currency, str) and self.faults.active("redemption-currency-case-insensitive"):
            body["currency"] = currency.strip().lower()
        if "currency" not in body and self.faults.active("redemption-currency-defaults"):
            body["currency"] = self.redemptions.ledger.currency


@dataclass(frozen=True)
class _Held:
    """A redemption whose idempotency key is taken and whose work waits to be settled."""

    scope: str
    key: str
    work: Callable[[], Answer]


def _answer(status: int, body: dict[str, Any], *, replayed: bool = False) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    media = PROBLEM_JSON if status >= 400 else "application/json"
    return json_response(body, status, headers, media_type=media)


def _in_flight() -> HTTPProblem:
    return HTTPProblem(
        409, "idempotency_in_flight", "a request with this Idempotency-Key is in progress"
    )


def _last_duplicate_wins(raw: bytes) -> dict[str, Any] | None:
    """A body refused only for a duplicate member name, read as a lax parser would (the last
    duplicate wins); None for any other body. Only the duplicate-keys fault uses it."""
    try:
        strictjson.loads(raw)
    except strictjson.StrictJSONError as error:
        if error.reason != "duplicate_key":
            return None
        loose = json.loads(raw)
        return loose if isinstance(loose, dict) else None
    return None
