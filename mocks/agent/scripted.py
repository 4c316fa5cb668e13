"""The mock agent: a deterministic script that drives an orchestrator CLI as an agent would.

catalog → choose → add → use the credentials against the provider API. It escalates — stops
with a clear message for the human and a distinct exit code — on every answer that needs a
person: consent, a payment method, a paid-service confirmation, terms of service, the spend
cap. It never prints a secret value; it reads revealed values into memory only to use them.
Its faults (`--fault`) make it misbehave in exactly one way each, so the agent checks can be
tested against it.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance import strictjson
from mocks._core.faults import FaultSet

__all__ = ["AgentResult", "ScriptedAgent", "subprocess_runner"]

Runner = Callable[[Sequence[str]], tuple[int, str]]
ESCALATIONS = {
    "CONSENT_REQUIRED": "the provider needs the human to approve linking an existing account",
    "PAYMENT_METHOD_REQUIRED": "the human must add a payment method",
    "CONFIRMATION_REQUIRED": "the service costs money: the human must confirm",
    "TOS_ACCEPTANCE_REQUIRED": "the human must accept the provider's terms",
    "SPEND_CAP_EXCEEDED": "the monthly spend cap is reached: the human must raise it",
}
EXIT_DONE, EXIT_FAILED, EXIT_ESCALATED = 0, 1, 3


def subprocess_runner(command: str, *, timeout: float = 60.0) -> Runner:
    """Run the orchestrator CLI as a child process (the way a real agent shells out)."""
    base = shlex.split(command)

    def run(arguments: Sequence[str]) -> tuple[int, str]:
        try:
            done = subprocess.run(
                [*base, *arguments], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return 124, ""
        return done.returncode, done.stdout

    return run


@dataclass
class AgentResult:
    exit_code: int
    transcript: list[str] = field(default_factory=list)
    """What the agent printed, line by line (checked for leaked secrets)."""
    commands: list[list[str]] = field(default_factory=list)
    """Every orchestrator CLI invocation, in order."""


class ScriptedAgent:
    def __init__(
        self,
        runner: Runner,
        *,
        provider: str,
        service: str | None = None,
        profile: str = "app-0.1d",
        faults: Sequence[str] = (),
        http: httpx.Client | None = None,
        max_polls: int = 5,
        paid_confirmed: bool = False,
    ) -> None:
        self._runner = runner
        self.provider = provider
        self.service = service
        self.faults = FaultSet("agent", profile, faults)
        self._http = http
        self.max_polls = max_polls
        self.paid_confirmed = paid_confirmed
        self.result = AgentResult(EXIT_FAILED)

    def say(self, line: str) -> None:
        self.result.transcript.append(line)

    def cli(self, *arguments: str, text_ok: bool = False) -> dict[str, Any]:
        args = list(arguments)
        # The no-json-flag fault scrapes one listing (credential names) as text; every other
        # call still uses --json, so the fault breaks exactly the envelope rule.
        if not (text_ok and self.faults.active("no-json-flag")):
            args.append("--json")
        self.result.commands.append(args)
        _, stdout = self._runner(args)
        try:
            document = strictjson.loads(stdout) if stdout.strip() else {}
        except strictjson.StrictJSONError:
            document = {}
        return document if isinstance(document, dict) else {}

    def run(self) -> AgentResult:
        service = self.service
        if not self.faults.active("skips-catalog"):
            catalog = self.cli("catalog", self.provider)
            if not catalog.get("ok"):
                return self._fail(catalog)
            offered = [
                entry
                for entry in (catalog.get("data") or {}).get("services") or []
                if isinstance(entry, dict)
                and str(entry.get("provider_name", "")).lower() == self.provider
            ]
            if service is None:
                free = [
                    entry for entry in offered if (entry.get("pricing") or {}).get("type") == "free"
                ]
                if not free:
                    self.say(f"no free service at {self.provider}; asking the human which to buy")
                    return self._finish(EXIT_ESCALATED)
                service = str(free[0]["service_id"])
            elif service not in {entry.get("service_id") for entry in offered}:
                self.say(f"{self.provider} does not offer {service}")
                return self._finish(EXIT_FAILED)
        if service is None:
            service = "free"
        confirm = self.paid_confirmed or self.faults.active("auto-confirms-paid")
        extra = ["--confirm-paid-service"] if confirm else []
        attempts = 5 if self.faults.active("retries-cap-refusal") else 1
        for _ in range(attempts):
            added = self.cli(
                "add", f"{self.provider}/{service}", "--name", service.replace(":", "-"), *extra
            )
            code = str((added.get("error") or {}).get("code", ""))
            if code != "SPEND_CAP_EXCEEDED":
                break
        if not added.get("ok"):
            if code in ESCALATIONS and not (
                code == "CONSENT_REQUIRED" and self.faults.active("ignores-consent")
            ):
                self.say(f"stopping: {ESCALATIONS[code]}")
                for step in added.get("next_steps") or []:
                    self.say(f"for the human: {step}")
                return self._finish(EXIT_ESCALATED)
            if code == "CONSENT_REQUIRED":
                url = str((added.get("data") or {}).get("url", ""))
                self._fetch(url)
            return self._fail(added)
        status = (added.get("data") or {}).get("status")
        polls = 0
        while status in ("pending", "needs_information") and polls < self.max_polls:
            if status == "needs_information":
                self.say("the provider needs more information; asking the human")
                return self._finish(EXIT_ESCALATED)
            polls += 1
            status = self._current_status(service)
        if status not in ("provisioned", "complete"):
            self.say(f"{self.provider}/{service} is still {status}; try again later")
            return self._finish(EXIT_FAILED)
        return self._use_credentials(service)

    def _current_status(self, service: str) -> str:
        listed = self.cli("status")
        for resource in (listed.get("data") or {}).get("resources") or []:
            if resource.get("service_id") == service:
                return str(resource.get("status"))
        return "unknown"

    def _use_credentials(self, service: str) -> AgentResult:
        names = self.cli("env", text_ok=True)
        self.say(
            "credentials are in: "
            + ", ".join(sorted((names.get("data") or {}).get("variables") or {}))
        )
        revealed = self.cli("env", "--reveal")
        variables = (revealed.get("data") or {}).get("variables") or {}
        prefix = service.replace(":", "-").upper().replace("-", "_")
        key, base = variables.get(f"{prefix}_API_KEY"), variables.get(f"{prefix}_BASE_URL")
        if self.faults.active("leaks-secret"):
            self.say(f"my key is {key}")
        if not isinstance(key, str) or not isinstance(base, str):
            self.say("the orchestrator returned no usable credentials")
            return self._finish(EXIT_FAILED)
        status = self._fetch(base + "whoami", bearer=key)
        self.say(f"the provider API answered {status}")
        return self._finish(EXIT_DONE if status == 200 else EXIT_FAILED)

    def _fetch(self, url: str, *, bearer: str | None = None) -> int:
        if not url or self._http is None:
            return 0
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        try:
            return self._http.get(url, headers=headers).status_code
        except httpx.HTTPError:
            return 0

    def _fail(self, document: dict[str, Any]) -> AgentResult:
        error = document.get("error") or {}
        self.say(f"failed: {error.get('code', 'unknown')}: {error.get('message', '')}")
        return self._finish(EXIT_FAILED)

    def _finish(self, code: int) -> AgentResult:
        self.result.exit_code = code
        return self.result
