"""The suite checks its own messages: what its mocks send the target is validated too.

A conformance verdict is only as good as the counterpart that produced it. When the suite
plays the orchestrator for a provider, every answer its orchestrator side gives (metadata,
JWKS, redemptions, refunds) is validated against that message's schema as it leaves. An
invalid one is a harness problem: it is recorded on the run, every later failure is reported
as a harness error instead of the target's failure, and the run exits 3.

Documents a check serves on purpose (a hostile or near-miss document, `ProviderContext.serving`)
sit in front of this monitor and are never validated: they are meant to be wrong.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.recorder import Recorder
from spec.schemas import default_store
from wire import strictjson
from wire.errors import ProvspecError

__all__ = ["ORCHESTRATOR_SIDE", "PROVIDER_SIDE", "HarnessMonitor"]

ORCHESTRATOR_SIDE: tuple[tuple[str, re.Pattern[str], range, str], ...] = (
    (
        "GET",
        re.compile(r"/\.well-known/app-orchestrator$"),
        range(200, 201),
        "orchestrator_metadata",
    ),
    ("GET", re.compile(r"/jwks\.json$"), range(200, 201), "jwks"),
    ("POST", re.compile(r"/redemptions$"), range(200, 300), "redemption_response"),
    ("POST", re.compile(r"/refunds$"), range(200, 300), "refund_response"),
)
"""(method, path pattern, statuses, message): the suite's orchestrator-side answers it checks."""

PROVIDER_SIDE: tuple[tuple[str, re.Pattern[str], range, str], ...] = (
    ("GET", re.compile(r"/provisioning/health$"), range(200, 201), "health_response"),
    ("GET", re.compile(r"/provisioning/services$"), range(200, 201), "services_response"),
    ("POST", re.compile(r"/provisioning/resources$"), range(200, 201), "resource_response"),
    ("GET", re.compile(r"/provisioning/resources/[^/]+$"), range(200, 201), "resource_response"),
)
"""The suite's mock providers' answers it checks in an orchestrator run (before any tampering a
check asks for, which is meant to be wrong)."""


class HarnessMonitor:
    """ASGI middleware around one of the suite's own mocks: validates its answers."""

    def __init__(
        self,
        app: ASGIApp,
        recorder: Recorder,
        profile: str,
        routes: tuple[tuple[str, re.Pattern[str], range, str], ...] = ORCHESTRATOR_SIDE,
    ) -> None:
        self._app = app
        self._recorder = recorder
        self._profile = profile
        self._routes = routes

    def _message_for(self, method: str, path: str, status: int) -> str | None:
        for route_method, pattern, statuses, message in self._routes:
            if method == route_method and pattern.search(path) and status in statuses:
                return message
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self._app(scope, receive, send)
            return
        status = 0
        body: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)

        await self._app(scope, receive, keep)
        name = self._message_for(str(scope.get("method", "")), str(scope.get("path", "")), status)
        if name is None:
            return
        problem = self.problem(name, b"".join(body))
        if problem:
            self._recorder.harness_problems.append(
                {
                    "exchange": int(scope.get("provspec.exchange_id", 0)),
                    "message": f"{scope.get('method')} {scope.get('path')} ({name}): {problem}",
                }
            )

    def problem(self, name: str, raw: bytes) -> str:
        """Why `raw` is not a valid `name` message, or ""."""
        try:
            instance: Any = strictjson.loads(raw)
        except strictjson.StrictJSONError as error:
            return f"not strict JSON: {error}"
        try:
            issues = default_store().validate(self._profile, name, instance)
        except ProvspecError:  # the profile defines no such message: nothing to check
            return ""
        return "; ".join(str(issue) for issue in issues[:3])
