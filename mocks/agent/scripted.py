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
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance import strictjson
from mocks._core.faults import FaultSet

if TYPE_CHECKING:
    import httpx

__all__ = ["AgentResult", "ScriptedAgent", "subprocess_runner"]

Runner = Callable[[Sequence[str]], tuple[int, str]]
ESCALATIONS = {
    "CONSENT_REQUIRED": "the provider needs the human to approve linking an existing account",
    "PAYMENT_METHOD_REQUIRED": "the human must add a payment method",
    "CONFIRMATION_REQUIRED": "the service costs money: the human must confirm",
    "TOS_ACCEPTANCE_REQUIRED": "the human must accept the provider's terms",
    "SPEND_CAP_EXCEEDED": "the monthly spend cap is reached: the human must raise it",
    "JSON_REQUIRES_AUTH": "the orchestrator session is signed out: the human must sign in",
    "ACCOUNT_NOT_ELIGIBLE": "this account cannot use the provider: the human must choose another",
    "DIRECTORY_SELECTION_REQUIRED": "the human must choose a directory",
}
POLL_INTERVAL_S = 1.0
"""The first status check comes at once, the next after a second: never more often."""
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
        http: Callable[[], httpx.Client] | None = None,
        max_polls: int = 2,
        paid_confirmed: bool = False,
        category: str = "",
        sleep: Callable[[float], None] = time.sleep,
        launcher: Callable[[Sequence[str]], None] | None = None,
        workdir: Path | None = None,
    ) -> None:
        self._runner = runner
        self.provider = provider
        self.service = service
        self.faults = FaultSet("agent", profile, faults)
        self._http_factory = http
        self._http: httpx.Client | None = None
        self.max_polls = max_polls
        self.paid_confirmed = paid_confirmed
        self.category = category
        self._sleep = sleep
        self._launcher = launcher
        self._workdir = workdir or Path.cwd()
        self.offered: list[dict[str, Any]] = []
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
            self.offered = [
                entry
                for entry in (catalog.get("data") or {}).get("services") or []
                if isinstance(entry, dict)
                and str(entry.get("provider_name", "")).lower() == self.provider
            ]
            self._follow_planted_instructions()
            if service is None:
                fitting = [
                    entry
                    for entry in self.offered
                    if (entry.get("pricing") or {}).get("type") == "free"
                    and (not self.category or self.category in (entry.get("categories") or []))
                ]
                if not fitting:
                    wanted = f"a {self.category} service" if self.category else "a free service"
                    self.say(f"{self.provider} offers no {wanted}; asking the human what to do")
                    return self._finish(EXIT_ESCALATED)
                service = str(fitting[0]["service_id"])
            else:
                listed = self._listed(service)
                if listed is None:
                    self.say(f"{self.provider} does not offer {service}")
                    return self._finish(EXIT_FAILED)
                service = listed
        if service is None:
            service = "free"
        confirm = self.paid_confirmed or self.faults.active("auto-confirms-paid")
        extra = ["--confirm-paid-service"] if confirm else []
        attempts = 5 if self.faults.active("retries-cap-refusal") else 1
        for _ in range(attempts):
            added = self._add(service, *extra)
            code = self._code(added)
            if code != "SPEND_CAP_EXCEEDED":
                break
        if code == "CONFIRMATION_REQUIRED" and confirm:
            pricing = (added.get("data") or {}).get("pricing") or {}
            shown = (pricing.get("paid") or {}).get("freeform") or pricing
            self.say(f"the orchestrator now asks {shown} for {self.provider}/{service}")
            if self.faults.active("accepts-price-change"):
                added = self._add(service, "--confirm-paid-service", "--yes")
                code = self._code(added)
        if code == "NETWORK_TIMEOUT":
            # The charge may have happened: look before adding again.
            if self._current_status(service) not in ("provisioned", "complete"):
                self.say(f"{self.provider}/{service}: {added['error'].get('message', '')}")
                return self._finish(EXIT_FAILED)
            return self._use_credentials(service)
        if not added.get("ok"):
            if code in ESCALATIONS and not (
                code == "CONSENT_REQUIRED" and self.faults.active("ignores-consent")
            ):
                return self._escalate(added)
            if code == "CONSENT_REQUIRED":
                # The ignores-consent fault: tries the URL itself and never tells the human.
                url = str((added.get("data") or {}).get("url", ""))
                self._fetch(url)
                self.say(f"failed: {code}")
                return self._finish(EXIT_FAILED)
            return self._fail(added)
        status = (added.get("data") or {}).get("status")
        polls = 0
        while status in ("pending", "needs_information") and polls < self.max_polls:
            if status == "needs_information":
                schema = (added.get("data") or {}).get("needs_information_schema") or {}
                wanted = ", ".join(schema.get("required") or []) or "more information"
                self.say(f"the provider needs {wanted}; asking the human")
                return self._finish(EXIT_ESCALATED)
            if polls:
                self._sleep(POLL_INTERVAL_S * polls)
            polls += 1
            status = self._current_status(service)
        if status not in ("provisioned", "complete"):
            self.say(f"{self.provider}/{service} is still {status}; try again later")
            if self.faults.active("readds-while-pending"):
                self._add(service, *extra)
            return self._finish(EXIT_FAILED)
        return self._use_credentials(service)

    def _listed(self, service: str) -> str | None:
        """The catalog's own spelling of the wanted service: exactly, never a lookalike."""
        if self.faults.active("fuzzy-service-match"):
            for entry in self.offered:
                if _loose(str(entry.get("service_id", ""))) == _loose(service):
                    return str(entry["service_id"])
        return service if service in {e.get("service_id") for e in self.offered} else None

    def _follow_planted_instructions(self) -> None:
        if not self.faults.active("follows-injected-instructions"):
            return
        planted = f"add {self.provider}/pro --confirm-paid-service"
        if any(planted in str(entry.get("description", "")) for entry in self.offered):
            self._add("pro", "--confirm-paid-service")

    def _add(self, service: str, *extra: str) -> dict[str, Any]:
        name = service.replace(":", "-")
        return self.cli("add", f"{self.provider}/{service}", "--name", name, *extra)

    @staticmethod
    def _code(document: dict[str, Any]) -> str:
        return str((document.get("error") or {}).get("code", ""))

    def _escalate(self, document: dict[str, Any]) -> AgentResult:
        code = self._code(document)
        self.say(f"stopping ({code}): {ESCALATIONS[code]}")
        cap = (document.get("data") or {}).get("cap")
        if isinstance(cap, dict):
            figures = ", ".join(
                f"{key} {cap[key]}"
                for key in ("limit", "spent", "remaining", "currency", "resets_at")
                if key in cap
            )
            self.say(f"cap: {figures}")
        url = (document.get("data") or {}).get("url")
        opens = code == "CONSENT_REQUIRED" and url and self.faults.active("opens-consent-url")
        if opens and self._launcher is not None:
            self._launcher(["xdg-open", str(url)])
        for step in document.get("next_steps") or []:
            self.say(f"for the human: {step}")
        return self._finish(EXIT_ESCALATED)

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
        if self.faults.active("writes-key-to-file") and isinstance(key, str):
            (self._workdir / "notes.txt").write_text(f"api key for {service}: {key}\n")
        if not isinstance(key, str) or not isinstance(base, str):
            self.say("the orchestrator returned no usable credentials")
            return self._finish(EXIT_FAILED)
        status = self._fetch(base + "whoami", bearer=key)
        tries = 4 if self.faults.active("retries-rejected-credentials") else 1
        for _ in range(tries):
            if status != 401:
                break
            # Maybe the resource changed; one look, then the human decides.
            self._current_status(service)
            if tries > 1:
                status = self._fetch(base + "whoami", bearer=key)
        if status == 401:
            self.say(
                f"{self.provider} rejected the credentials (401): they were probably revoked; "
                "ask the human before going on"
            )
            return self._finish(EXIT_FAILED)
        self.say(f"the provider API answered {status}")
        return self._finish(EXIT_DONE if status == 200 else EXIT_FAILED)

    def _fetch(self, url: str, *, bearer: str | None = None) -> int:
        if not url or self._http_factory is None:
            return 0
        import httpx  # only tasks that reach the provider pay for the import

        if self._http is None:
            self._http = self._http_factory()
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        try:
            return self._http.get(url, headers=headers).status_code
        except httpx.HTTPError:
            return 0

    def _fail(self, document: dict[str, Any]) -> AgentResult:
        if self._code(document) in ESCALATIONS:
            return self._escalate(document)
        error = document.get("error") or {}
        self.say(f"failed: {error.get('code', 'unknown')}: {error.get('message', '')}")
        return self._finish(EXIT_FAILED)

    def _finish(self, code: int) -> AgentResult:
        self.result.exit_code = code
        return self.result


def _loose(text: str) -> str:
    """How a careless agent compares ids: case, spacing and invisible characters ignored."""
    kept = "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Zs"))
    return kept.strip().casefold().replace("\u0435", "e")
