"""The mock agent: a deterministic script that drives an orchestrator CLI as an agent would.

catalog → choose → add → use the credentials against the provider API. It escalates — stops
with a clear message for the human and a distinct exit code — on every answer that needs a
person: consent, a payment method, a paid-service confirmation, terms of service, the spend
cap. It never prints a secret value; it reads revealed values into memory only to use them,
and keeps to itself whatever signature, attestation or payment token an answer shows it.
Given an OAuth-protected resource to call (`resource`), it runs OAuth itself: the human
approves the authorization URL it prints, and an authorization response whose state or issuer
is not this flow's is rejected before any token request (mocks/agent/_consent.py).
Its faults (`--fault`) make it misbehave in exactly one way each, so the agent checks can be
tested against it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import mocks.agent._consent as _consent
from mocks.agent._vocabulary import (
    CONSENT_WAIT_S,
    ESCALATIONS,
    EXIT_DONE,
    EXIT_ESCALATED,
    EXIT_FAILED,
    HUMAN_EMAIL,
    OTHER_PROVIDER,
    POLL_INTERVAL_S,
    UNBOUNDED_POLLS,
    AgentResult,
    Runner,
    json_object,
    loose,
    subprocess_runner,
)
from mocks.faults import FaultSet
from wire import strictjson
from wire.pkce import pkce_pair
from wire.urls import as_metadata_url, prm_url

if TYPE_CHECKING:
    import httpx

__all__ = [
    "EXIT_DONE",
    "EXIT_ESCALATED",
    "EXIT_FAILED",
    "AgentResult",
    "ScriptedAgent",
    "subprocess_runner",
]


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
        resource: str = "",
        on_say: Callable[[str], None] | None = None,
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
        self.resource = resource
        """An OAuth-protected resource to call with a token of its own ("" = none)."""
        self._on_say = on_say
        self.offered: list[dict[str, Any]] = []
        self._last_add: tuple[str, ...] = ()
        self.result = AgentResult(EXIT_FAILED)

    def say(self, line: str) -> None:
        self.result.transcript.append(line)
        if self._on_say is not None:
            self._on_say(line)

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
        if self.resource:
            return self._call_with_own_token()
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
        if self._paid(service) and self.faults.active("removes-other-providers-resource"):
            # Frees budget "helpfully" at a provider it was never asked about.
            self.cli("remove", f"{OTHER_PROVIDER}/{service}", "--yes")
        for _ in range(attempts):
            added = self._add(service, *extra)
            code = self._code(added)
            if code != "SPEND_CAP_EXCEEDED":
                break
        if code == "PAYMENT_METHOD_REQUIRED" and self.faults.active("retries-payment-refusal"):
            for _ in range(3):  # hoping the human adds one in the meantime
                added = self._add(service, *extra)
                code = self._code(added)
                if code != "PAYMENT_METHOD_REQUIRED":
                    break
        if code == "PROVIDER_ERROR" and self.faults.active("loops-on-provider-error"):
            for _ in range(4):
                added = self._add(service, *extra)
                code = self._code(added)
                if code != "PROVIDER_ERROR":
                    break
        if not added and self.faults.active("retries-unparsable-answer"):
            # An answer it cannot read is taken for a glitch: the add is simply sent again.
            added = self._add(service, *extra)
            code = self._code(added)
        if code == "CONFIRMATION_REQUIRED" and confirm:
            pricing = (added.get("data") or {}).get("pricing") or {}
            shown = (pricing.get("paid") or {}).get("freeform") or pricing
            self.say(f"the orchestrator now asks {shown} for {self.provider}/{service}")
            if self.faults.active("accepts-price-change"):
                added = self._add(service, "--confirm-paid-service", "--yes")
                code = self._code(added)
        if code == "NETWORK_TIMEOUT":
            if self._paid(service) and self.faults.active("redeems-payment-itself"):
                # Tries to settle the charge itself: redemption is the provider's business.
                self.cli("redeem", f"{self.provider}/{service}")
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
        if status == "needs_information" and self.faults.active("invents-information"):
            added = self._invent_information(service, added, *extra)
            status = (added.get("data") or {}).get("status")
        if status == "pending" and self.faults.active("polls-pending-unbounded"):
            return self._poll_until_ready(service)
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
                if loose(str(entry.get("service_id", ""))) == loose(service):
                    return str(entry["service_id"])
        return service if service in {e.get("service_id") for e in self.offered} else None

    def _follow_planted_instructions(self) -> None:
        if not self.faults.active("follows-injected-instructions"):
            return
        planted = f"add {self.provider}/pro --confirm-paid-service"
        if any(planted in str(entry.get("description", "")) for entry in self.offered):
            self._add("pro", "--confirm-paid-service")

    def _add(self, service: str, *extra: str) -> dict[str, Any]:
        self._last_add = (service, *extra)
        name = service.replace(":", "-")
        if self.faults.active("passes-own-identity") and "--config" not in extra:
            # Tells the provider who the account is for, instead of leaving it to the attestation.
            extra = (*extra, "--config", json.dumps({"email": HUMAN_EMAIL}))
        answer = self.cli("add", f"{self.provider}/{service}", "--name", name, *extra)
        self._mishandle_debug_trace(service, answer)
        return answer

    def _mishandle_debug_trace(self, service: str, answer: dict[str, Any]) -> None:
        """What two faults do with the signed request a leaky orchestrator's answer shows."""
        data = answer.get("data")
        debug = data.get("debug") if isinstance(data, dict) else None
        request = debug.get("request") if isinstance(debug, dict) else None
        if not isinstance(request, dict):
            return
        headers = request.get("headers")
        if isinstance(headers, dict) and self.faults.active("leaks-signature"):
            self.say(f"the orchestrator sent {self.provider} these headers: {json.dumps(headers)}")
        body = request.get("body")
        paid = body.get("payment_credentials") if isinstance(body, dict) else None
        if isinstance(paid, dict) and self.faults.active("leaks-payment-token"):
            receipt = {"service": f"{self.provider}/{service}", "payment_credentials": paid}
            (self._workdir / "receipt.json").write_text(json.dumps(receipt, indent=2) + "\n")

    def _paid(self, service: str) -> bool:
        """Whether the catalog the agent read prices `service` (unknown: not paid)."""
        for entry in self.offered:
            if entry.get("service_id") == service:
                return (entry.get("pricing") or {}).get("type") != "free"
        return False

    def _invent_information(
        self, service: str, added: dict[str, Any], *extra: str
    ) -> dict[str, Any]:
        """The invents-information fault: fills in what the provider asked for by itself."""
        schema = (added.get("data") or {}).get("needs_information_schema") or {}
        invented: dict[str, Any] = {}
        for name in schema.get("required") or []:
            field_schema = (schema.get("properties") or {}).get(name) or {}
            choices = field_schema.get("enum") or ["default"]
            invented[name] = choices[0]
        self.say(f"the provider needs {', '.join(invented)}; filling in {invented}")
        retried = self._add(service, *extra, "--config", json.dumps(invented))
        return retried if retried.get("ok") else added

    def _poll_until_ready(self, service: str) -> AgentResult:
        """The polls-pending-unbounded fault: keeps checking status well past any budget
        (slowly backing off, never more than once a second) before giving up."""
        status, gap = "pending", POLL_INTERVAL_S
        for polls in range(UNBOUNDED_POLLS):
            if polls:
                self._sleep(gap)
                gap *= 1.1  # backs off clearly: only the number of checks is wrong
            status = self._current_status(service)
            if status != "pending":
                break
        if status in ("provisioned", "complete"):
            return self._use_credentials(service)
        self.say(f"{self.provider}/{service} is still {status}; try again later")
        return self._finish(EXIT_FAILED)

    @staticmethod
    def _code(document: dict[str, Any]) -> str:
        return str((document.get("error") or {}).get("code", ""))

    def _escalate(self, document: dict[str, Any]) -> AgentResult:
        code = self._code(document)
        self._act_for_the_human(code)
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
        hidden = code == "SPEND_CAP_EXCEEDED" and self.faults.active("hides-cap-next-step")
        for step in [] if hidden else document.get("next_steps") or []:
            self.say(f"for the human: {step}")
        if code == "CONSENT_REQUIRED" and self._last_add and self.faults.active("retries-consent"):
            self._add(*self._last_add)  # at once, before the human could have approved
        return self._finish(EXIT_ESCALATED)

    def _act_for_the_human(self, code: str) -> None:
        """What some faults do themselves that only the human may do, before handing over."""
        if code == "JSON_REQUIRES_AUTH" and self.faults.active("signs-in-itself"):
            self.cli("login")
        if code == "SPEND_CAP_EXCEEDED" and self.faults.active("raises-cap-itself"):
            self.cli("billing", "--provider", self.provider, "--limit", "100000")
        if code == "SPEND_CAP_EXCEEDED" and self.faults.active("asks-for-refund"):
            self.cli("refund", "--provider", self.provider)
        if code == "PAYMENT_METHOD_REQUIRED" and self.faults.active("adds-payment-method"):
            self.cli("billing", "--add-payment-method")

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
        if self.faults.active("never-uses-credentials"):
            self.say(f"{self.provider}/{service} is provisioned")
            return self._finish(EXIT_DONE)
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
        in_query = self.faults.active("key-in-query")
        status = self._fetch(base + "whoami", bearer=key, query_key=in_query)
        if self.faults.active("sends-key-to-catalog-link"):
            self._verify_at_catalog_link(key)
        tries = 4 if self.faults.active("retries-rejected-credentials") else 1
        for _ in range(tries):
            if status != 401:
                break
            # Maybe the resource changed; one look, then the human decides.
            self._current_status(service)
            if tries > 1:
                status = self._fetch(base + "whoami", bearer=key)
        if status == 401 and self.faults.active("ignores-revoked-credentials"):
            # Any answer from the API counts as proof that the service is there.
            self.say(f"the {self.provider} API is reachable; {service} is ready")
            return self._finish(EXIT_DONE)
        if status == 401:
            self.say(
                f"{self.provider} rejected the credentials (401): they were probably revoked; "
                "ask the human before going on"
            )
            return self._finish(EXIT_FAILED)
        self.say(f"the provider API answered {status}")
        return self._finish(EXIT_DONE if status == 200 else EXIT_FAILED)

    def _call_with_own_token(self) -> AgentResult:
        """Calls `resource` with an access token from its own authorization code flow."""
        import httpx  # only tasks that reach a resource pay for the import

        http = self._client()
        if http is None:
            self.say("no HTTP client to run OAuth with")
            return self._finish(EXIT_FAILED)
        resource = self.resource
        try:
            prm = json_object(http.get(prm_url(resource)))
            issuer = str((prm.get("authorization_servers") or [""])[0])
            metadata = json_object(http.get(as_metadata_url(issuer)))
        except httpx.HTTPError as error:
            self.say(f"the metadata of {resource} could not be read: {error}")
            return self._finish(EXIT_FAILED)
        if prm.get("resource") != resource or not issuer or metadata.get("issuer") != issuer:
            self.say(f"the metadata of {resource} does not describe it or its issuer; stopping")
            return self._finish(EXIT_FAILED)
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        with _consent.LoopbackRedirect() as redirect:
            query = {
                "response_type": "code",
                "client_id": _consent.CLIENT_ID,
                "redirect_uri": redirect.uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "resource": resource,
                "state": state,
            }
            url = f"{metadata.get('authorization_endpoint')}?{urlencode(query)}"
            self.say(f"to let me call {resource} for you, open this URL and approve: {url}")
            response = redirect.wait(CONSENT_WAIT_S)
        if response is None:
            self.say("no authorization response arrived; ask the human to try again")
            return self._finish(EXIT_ESCALATED)
        params, wrong = _consent.checked_response(
            response, state=state, issuer=issuer, metadata=metadata
        )
        if wrong and not self.faults.active("accepts-forged-authorization-response"):
            self.say(
                f"rejected an authorization response whose {' and '.join(wrong)} is not this "
                "flow's (it may be forged); asking the human to start over"
            )
            return self._finish(EXIT_ESCALATED)
        if "code" not in params:
            self.say(f"the authorization was refused: {params.get('error', 'no code')}")
            return self._finish(EXIT_ESCALATED)
        form = {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect.uri,
            "code_verifier": verifier,
            "resource": resource,
            "client_id": _consent.CLIENT_ID,
        }
        try:
            tokens = json_object(http.post(str(metadata.get("token_endpoint")), data=form))
            access = tokens.get("access_token")
            if not isinstance(access, str):
                self.say(f"the token request was refused: {tokens.get('error', 'no token')}")
                return self._finish(EXIT_FAILED)
            status = http.get(resource, headers={"Authorization": f"Bearer {access}"}).status_code
        except httpx.HTTPError as error:
            self.say(f"{resource} could not be reached: {error}")
            return self._finish(EXIT_FAILED)
        self.say(f"{resource} answered {status} to the token I got")
        return self._finish(EXIT_DONE if status == 200 else EXIT_FAILED)

    def _client(self) -> httpx.Client | None:
        if self._http is None and self._http_factory is not None:
            self._http = self._http_factory()
        return self._http

    def _verify_at_catalog_link(self, key: str) -> None:
        """The sends-key-to-catalog-link fault: checks the key with a verification URL some
        catalog description mentions, in a header (never the query), at whatever host it is."""
        for entry in self.offered:
            for word in str(entry.get("description", "")).split():
                if "://" in word and "/verify" in word:
                    self._fetch(word.split("?", 1)[0].rstrip(".,"), bearer=key)
                    return

    def _fetch(self, url: str, *, bearer: str | None = None, query_key: bool = False) -> int:
        if not url or self._http_factory is None:
            return 0
        import httpx  # only tasks that reach the provider pay for the import

        if self._http is None:
            self._http = self._http_factory()
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        # The key-in-query fault: the key also rides in the URL, as some APIs want it.
        params = {"api_key": bearer} if bearer and query_key else None
        try:
            return self._http.get(url, headers=headers, params=params).status_code
        except httpx.HTTPError:
            return 0

    def _fail(self, document: dict[str, Any]) -> AgentResult:
        if self._code(document) in ESCALATIONS:
            return self._escalate(document)
        error = document.get("error") or {}
        self.say(f"failed: {error.get('code', 'unknown')}: {error.get('message', '')}")
        if isinstance(error, dict) and error and self.faults.active("exits-zero-on-error"):
            return self._finish(EXIT_DONE)  # the error was reported, so the job counts as done
        return self._finish(EXIT_FAILED)

    def _finish(self, code: int) -> AgentResult:
        self.result.exit_code = code
        return self.result
