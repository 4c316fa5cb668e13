"""Cassettes: every run's exchanges, kept so one requirement's check can be re-run offline.

`provspec run` writes `cassette.json` next to its other reports: what the run was against,
per check the span of exchanges it made, each requirement's verdict, and every exchange and
CLI call with secrets masked (the recorder's masking: the cassette holds nothing a report
would not). `provspec replay CASSETTE --requirement ID` runs the check(s) that judged ID again
with no target: an httpx transport answers each request with the response recorded for the
same method and URL, in recorded order, and the verdict is printed next to the recorded one.

Replay covers provider runs (the checks talk HTTP to the target). Orchestrator and agent
checks drive a command line and are replayed by running them again.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from conformance.adapters.provider import (
    EMBEDDED_ORCHESTRATOR,
    EMBEDDED_PROVIDER,
    ProviderTargetConfig,
)
from conformance.engine import HarnessError, RunPlan, run_sync
from conformance.results import Finding, RunResult
from spec.requirement import Role
from wire.errors import UsageError

__all__ = ["CASSETTE_FORMAT", "ReplayTransport", "cassette_of", "load_cassette", "replay"]

CASSETTE_FORMAT = "cassette/1"
_MASK = re.compile(r"«masked ([0-9a-f]+)»")
_DROPPED_HEADERS = {"content-length", "content-encoding", "transfer-encoding"}


def cassette_of(result: RunResult, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cassette of one run (JSON-ready)."""
    checks: dict[str, dict[str, Any]] = {}
    for finding in result.findings:
        for name in finding.checks:
            entry = checks.setdefault(name, {"requirements": [], "span": None})
            if finding.requirement.id not in entry["requirements"]:
                entry["requirements"].append(finding.requirement.id)
    for name, (after, upto) in result.check_spans.items():
        checks.setdefault(name, {"requirements": [], "span": None})["span"] = [after, upto]
    return {
        "provspec": CASSETTE_FORMAT,
        "role": result.role,
        "profile": result.profile,
        "target": result.target,
        "settings": settings or {},
        "checks": checks,
        "verdicts": {
            finding.requirement.id: {
                "status": finding.status.value,
                "message": finding.message,
                "blame": finding.as_json()["blame"],
                "checks": finding.checks,
            }
            for finding in result.findings
        },
        "exchanges": [exchange.as_json() for exchange in result.recorder.exchanges],
        "cli_calls": [call.as_json() for call in result.recorder.cli_calls],
    }


def write_cassette(result: RunResult, path: Path, settings: dict[str, Any] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(cassette_of(result, settings), indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )


def load_cassette(path: Path) -> dict[str, Any]:
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"cassette {path} does not exist (`provspec run` writes one)") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"cassette {path} is not readable JSON: {error}") from None
    if not isinstance(document, dict) or document.get("provspec") != CASSETTE_FORMAT:
        raise UsageError(f"{path} is not a provspec cassette ({CASSETTE_FORMAT})")
    return document


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers each request with the recorded response of the same method and URL, in the
    recorded order (falling back to method and path when a query differs, e.g. a fresh
    OAuth state). A request the cassette cannot answer is a harness error."""

    def __init__(self, exchanges: list[dict[str, Any]]) -> None:
        self._by_url: dict[tuple[str, str], deque[dict[str, Any]]] = defaultdict(deque)
        self._by_path: dict[tuple[str, str], deque[dict[str, Any]]] = defaultdict(deque)
        for exchange in exchanges:
            method, url = str(exchange["method"]), str(exchange["url"])
            self._by_url[(method, url)].append(exchange)
            self._by_path[(method, urlsplit(url).path)].append(exchange)
        self.served = 0

    def _take(self, method: str, url: str) -> dict[str, Any] | None:
        exact = self._by_url.get((method, url))
        if exact:
            chosen = exact.popleft()
            self._by_path[(method, urlsplit(url).path)].remove(chosen)
            return chosen
        near = self._by_path.get((method, urlsplit(url).path))
        if near:
            chosen = near.popleft()
            self._by_url[(method, str(chosen["url"]))].remove(chosen)
            return chosen
        return None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        recorded = self._take(request.method, str(request.url))
        if recorded is None:
            raise HarnessError(
                f"the cassette holds no answer for {request.method} {request.url} "
                "(the check took another path than when it was recorded)"
            )
        self.served += 1
        error = recorded.get("error")
        if error:
            name, _, message = str(error).partition(": ")
            kind = getattr(httpx, name, None)
            if isinstance(kind, type) and issubclass(kind, httpx.TransportError):
                raise kind(message, request=request)
            raise httpx.TransportError(str(error), request=request)
        headers = [
            (name, _ascii_masks(str(value)))
            for name, value in dict(recorded.get("response_headers") or {}).items()
            if name.lower() not in _DROPPED_HEADERS
        ]
        return httpx.Response(
            int(recorded.get("status") or 0),
            headers=headers,
            stream=httpx.ByteStream(
                _ascii_masks(str(recorded.get("response_body") or "")).encode()
            ),
            request=request,
        )


def _ascii_masks(text: str) -> str:
    """A masked secret («masked 1a2b3c4d») as a token a check can send on in a header."""
    return _MASK.sub(lambda match: f"masked-{match.group(1)}", text)


def checks_judging(cassette: dict[str, Any], requirement_id: str) -> list[str]:
    verdict = cassette.get("verdicts", {}).get(requirement_id)
    if verdict is None:
        known = ", ".join(sorted(cassette.get("verdicts", {}))[:8])
        raise UsageError(
            f"the cassette's run has no requirement {requirement_id} (it has e.g. {known})"
        )
    names = [str(name) for name in verdict.get("checks", [])]
    if not names:
        raise UsageError(
            f"no check judged {requirement_id} in the recorded run "
            f"({verdict.get('status')}: {verdict.get('message')}); there is nothing to replay"
        )
    return names


def replay(cassette: dict[str, Any], requirement_id: str) -> tuple[Finding, RunResult]:
    """Re-run the checks that judged `requirement_id`, offline, against the recorded bytes."""
    role = str(cassette.get("role"))
    if role != Role.PROVIDER.value:
        raise UsageError(
            f"replay covers provider runs; this cassette is of a {role} run, whose checks "
            "drive a command line: run them again with `provspec run`"
        )
    names = checks_judging(cassette, requirement_id)
    spans = [cassette["checks"].get(name, {}).get("span") for name in names]
    exchanges = [
        exchange
        for exchange in cassette.get("exchanges", [])
        if exchange.get("direction", "sent") == "sent"
        and any(span and span[0] < int(exchange["id"]) <= span[1] for span in spans)
    ]
    settings = dict(cassette.get("settings") or {})
    profile = str(cassette.get("profile"))
    target = str(settings.get("base_url") or EMBEDDED_PROVIDER)
    config = ProviderTargetConfig(
        profile=profile,
        base_url=target,
        hmac_secret="replayed-no-secret",
        existing_email=str(settings.get("existing_email", "existing@example.com")),
        scripted_consent=bool(settings.get("scripted_consent", False)),
        orchestrator_port=0,
        allowed_hosts=(urlsplit(EMBEDDED_PROVIDER).hostname or "", _host(EMBEDDED_ORCHESTRATOR)),
        transport=ReplayTransport(exchanges),
        fuzz_examples=int(settings.get("fuzz_examples", 0)),
        fuzz_seed=int(settings.get("fuzz_seed", 0)),
    )
    plan = RunPlan(Role.PROVIDER, profile, provider=config, only_checks=tuple(names))
    result = run_sync(plan)
    finding = next(f for f in result.findings if f.requirement.id == requirement_id)
    return finding, result


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""
