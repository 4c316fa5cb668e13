"""Preflight: before the first check, prove the run can judge the target at all.

A run against a target that cannot be reached, that is not the protocol, or that refuses the
suite's credentials judges nothing: every check would fail, skip or error for the same one
reason, and that reason would drown in 50 lines. Preflight finds the reason first and stops
the run with one message naming it and what to change (`PreflightError`): exit 3 when the
environment explains it (DNS, TLS, a refused or timed-out connection), exit 2 when the
configuration does (a wrong secret, a base URL answering HTML or 404, a missing CLI, no
registered providers).

Per role, against a real target only (the embedded mocks are the suite's own):

* provider: DNS, connect and TLS to the base URL; a signed `GET provisioning/health`
  answers JSON (not a page, not 404), is not refused (401/403: the HMAC secret for 0.1d; for
  app-next, the attestation, i.e. whether the provider could fetch the suite's JWKS), and
  does not list another profile's version only;
* orchestrator: the CLI's program exists; `catalog --json` answers an envelope for a
  signed-in user; both of the suite's providers are registered; app-next: the issuer's
  metadata is reachable;
* resource server: DNS, connect and TLS to the resource; it is not a 404 or an HTML page;
* agent: the command names a program (checked when its world starts).

Anything else a target gets wrong is left to the checks, which judge it requirement by
requirement: a health without the version fails PRV-DSC-001, it does not stop the run.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

from conformance.adapters.orchestrator import OTHER_PROVIDER_NAME, PROVIDER_NAME, OrchestratorTarget
from conformance.adapters.provider import ProviderTarget
from conformance.adapters.resource_server import ResourceServerTarget
from conformance.errors import PreflightError
from conformance.network import environment_error, network_problem
from spec.schemas import default_store
from wire import strictjson
from wire.urls import orchestrator_metadata_url

__all__ = ["PreflightError", "environment_error", "network_problem", "preflight"]


async def preflight(target: Any, plan: Any) -> None:
    """Raise PreflightError naming the root cause when `target` (running) cannot be judged."""
    if isinstance(target, ProviderTarget):
        if not target.embedded and target.config.transport is None:
            await _provider(target)
    elif isinstance(target, OrchestratorTarget):
        if target.config.command is not None:
            await _orchestrator(target)
    elif isinstance(target, ResourceServerTarget) and target.config.target is not None:
        await _resource_server(target)


async def _resolve(url: str, what: str) -> None:
    """DNS first: a name that does not resolve is said so, not as a connect error."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return
    try:
        await asyncio.get_running_loop().getaddrinfo(host, parts.port or None)
    except socket.gaierror as error:
        raise PreflightError(
            f"{what}: the host {host} cannot be resolved (DNS: {error.strerror or error})",
            f"check the host name in {url} and that this machine can resolve it",
            environment=True,
        ) from None


async def _get(send: Any, url: str, what: str) -> httpx.Response:
    try:
        response: httpx.Response = await send()
    except httpx.HTTPError as error:
        problem = network_problem(error, url, what)
        if problem is not None:
            raise problem from None
        raise PreflightError(
            f"{what}: {url} was reached, then gave no answer ({type(error).__name__}: {error})",
            "check that the target is healthy; a slow one needs a larger [timeouts] request",
            environment=True,
        ) from None
    return response


def _kind(response: httpx.Response) -> str:
    """What an answer is, in words: 'an HTML page', 'a text/plain body', 'JSON', …"""
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    text = response.content[:200].lstrip().lower()
    if media == "text/html" or text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if _json(response) is not None:
        return "JSON"
    if not response.content:
        return "an empty body"
    return f"a {media or 'untyped'} body that is not JSON"


def _json(response: httpx.Response) -> Any:
    try:
        return strictjson.loads(response.content)
    except strictjson.StrictJSONError:
        return None


def _error_code(document: Any) -> str:
    if not isinstance(document, dict):
        return ""
    error = document.get("error")
    if isinstance(error, dict):
        return str(error.get("code") or "")
    if isinstance(error, str):
        return error
    return str(document.get("code") or "")


# --- provider ------------------------------------------------------------------------------


async def _provider(target: Any) -> None:
    base = target.base_url
    what = "the provider"
    await _resolve(base, what)
    client = target.client
    mark = target.recorder.mark
    url = base + "provisioning/health"
    response = await _get(lambda: client.send("GET", "provisioning/health"), base, what)
    status = response.status_code
    document = _json(response)
    kind = _kind(response)
    received = [e for e in target.recorder.since(mark) if e.direction == "received"]
    if status in (401, 403):
        code = _error_code(document)
        answered = f"{status} {code}".strip() + ("" if document is not None else f" ({kind})")
        if target.family == "app-0.1d":
            header = target.params.signature_header
            raise PreflightError(
                f"the provider refused the suite's {header}: GET {url} answered {answered}",
                f"$PROVSPEC_HMAC_SECRET (or --hmac-secret) must be the {header} secret the "
                "provider is configured with for this orchestrator",
            )
        issuer = target.core.issuer
        fetched = sorted({urlsplit(e.url).path for e in received})
        seen = (
            f"it fetched {', '.join(fetched)} from the suite and still refused"
            if fetched
            else f"it never fetched the suite's metadata or JWKS from {issuer}"
        )
        raise PreflightError(
            f"the provider refused the suite's attestation: GET {url} answered {answered}; {seen}",
            f"configure the provider to trust the orchestrator issuer {issuer} (`provspec keys "
            "--profile app-next` prints what), and make that address reachable from the "
            "provider (one outside this machine needs the suite's orchestrator side at a "
            "public base URL)",
        )
    if status == 404 or kind == "an HTML page":
        raise PreflightError(
            f"the provider's base URL is not an APP endpoint: GET {url} answered {status} with "
            f"{kind}",
            "--target must be the base URL the provisioning/… paths hang off, with its path "
            "and trailing slash (e.g. https://staging.provider.example/api/partners/stripe/)",
        )
    if document is None:
        raise PreflightError(
            f"the provider does not answer the protocol: GET {url} answered {status} with {kind}",
            "--target must be the provider's APP base URL (health answers JSON there)",
        )
    if status >= 500:
        code = _error_code(document)
        hint = (
            f"; an app-next provider answers so when it cannot fetch the keys of the issuer it "
            f"trusts: is that exactly {target.core.issuer}, and can it reach it?"
            if target.family == "app-next"
            else ""
        )
        raise PreflightError(
            f"the provider is not ready to be judged: a signed GET {url} answered {status} "
            f"{code}".rstrip()
            + hint,
            "bring the provider up healthy (its logs say why it fails) and run again",
            environment=True,
        )
    if status == 400 and _error_code(document) == "invalid_api_version":
        raise PreflightError(
            f"the provider does not speak {target.profile}: GET {url} with "
            f"{target.params.version_header}: {target.params.api_version} answered 400 "
            "invalid_api_version",
            "choose the profile the provider implements with --profile (app-0.1d or app-next)",
        )
    _versions_of_another_profile(target, document, url)


def _versions_of_another_profile(target: Any, document: Any, url: str) -> None:
    """Health that lists another built-in profile's version and not ours: the wrong profile."""
    versions = document.get("supported_versions") if isinstance(document, dict) else None
    if not isinstance(versions, list) or target.params.api_version in versions:
        return
    store = default_store()
    others = {
        store.profile(name).params.api_version: name
        for name in ("app-0.1d", "app-next")
        if name != target.family
    }
    spoken = [others[v] for v in versions if isinstance(v, str) and v in others]
    if spoken:
        raise PreflightError(
            f"the provider speaks {', '.join(spoken)}, not {target.profile}: GET {url} lists "
            f"supported_versions {versions}",
            f"run with --profile {spoken[0]}",
        )


# --- orchestrator --------------------------------------------------------------------------


async def _orchestrator(target: Any) -> None:
    command = target.config.command
    where = "--orchestrator-cli or [orchestrator] command"
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise PreflightError(
            f"the orchestrator CLI {command!r} cannot be parsed ({error})", f"fix {where}"
        ) from None
    if not argv or shutil.which(argv[0]) is None:
        raise PreflightError(
            f"the orchestrator CLI {command!r} cannot be run: {argv[0] if argv else '(empty)'} "
            "is not a program on PATH",
            f"set {where} to the command your agents run (e.g. 'stripe projects'), installed "
            "and on PATH",
        )
    call, envelope = await asyncio.to_thread(target.cli, "catalog")
    shown = " ".join(call.argv)
    if call.exit_code is None:
        raise PreflightError(
            f"`{shown}` did not finish in time",
            "check that the CLI runs unattended (no prompt, no browser) for the signed-in "
            "test user",
            environment=True,
        )
    if not envelope:
        printed = (call.stdout.strip() or call.stderr.strip() or "nothing").splitlines()[0]
        raise PreflightError(
            f"`{shown}` printed no JSON envelope (exit {call.exit_code}): {printed[:160]}",
            f"set {where} to the orchestrator's agent-facing CLI; it must answer --json with "
            "the Stripe Projects envelope {ok, data, error, …}",
        )
    if envelope.get("ok") is not True:
        problem = envelope.get("error")
        code = str(problem.get("code") or "") if isinstance(problem, dict) else ""
        message = str(problem.get("message") or "") if isinstance(problem, dict) else ""
        signed_out = "AUTH" in code.upper() or "LOGIN" in code.upper()
        raise PreflightError(
            f"`{shown}` answered an error: {code} {message}".strip(),
            "sign a test user in (with a test payment method) for the CLI before the run"
            if signed_out
            else "make `catalog --json` work for the test user before the run",
        )
    data = envelope.get("data")
    services = data.get("services") if isinstance(data, dict) else None
    names = {
        str(entry.get("provider_name", "")).lower()
        for entry in services or []
        if isinstance(entry, dict)
    }
    missing = [name for name in (PROVIDER_NAME, OTHER_PROVIDER_NAME) if name not in names]
    if missing:
        urls = {
            PROVIDER_NAME: target.provider.base_url,
            OTHER_PROVIDER_NAME: target.other_provider.base_url,
        }
        warnings = envelope.get("warnings")
        note = (
            f" (it warned: {'; '.join(map(str, warnings))[:200]})"
            if isinstance(warnings, list) and warnings
            else ""
        )
        raise PreflightError(
            f"the orchestrator's catalog lists no service of {' or '.join(missing)}: the "
            f"suite's providers are not registered with it{note}",
            "register "
            + " and ".join(f"{name} at {urls[name]}" for name in missing)
            + " before the run (README: For orchestrator vendors, step 2)",
        )
    if target.family == "app-next" and target.issuer:
        metadata = orchestrator_metadata_url(target.issuer)
        what = "the orchestrator's issuer"
        await _resolve(metadata, what)
        http = target.http
        response = await _get(lambda: http.get(metadata), metadata, what)
        if response.status_code == 404 or _json(response) is None:
            raise PreflightError(
                f"{what} serves no metadata: GET {metadata} answered {response.status_code} "
                f"with {_kind(response)}",
                "[orchestrator] issuer must be the origin (and path) where "
                "/.well-known/app-orchestrator is served",
            )


# --- resource server -----------------------------------------------------------------------


async def _resource_server(target: Any) -> None:
    url = target.url
    what = "the resource"
    await _resolve(url, what)
    http = target.http
    response = await _get(lambda: http.get(url), url, what)
    kind = _kind(response)
    if response.status_code == 404 or (kind == "an HTML page" and response.status_code < 400):
        raise PreflightError(
            f"{url} is not a protected resource: GET answered {response.status_code} with {kind}",
            "--target must be the resource's own URL (an MCP server's endpoint, e.g. "
            "https://mcp.staging.example/mcp), used exactly as given",
        )
