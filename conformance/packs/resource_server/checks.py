"""What any OAuth-protected resource owes a client that knows nothing but its URL.

The discovery chain is walked once per check (each is independent and cheap): request the
target bare, read the Bearer challenge, fetch the metadata it names (or the well-known URL
built from the target), then each authorization server's RFC 8414 metadata.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

import httpx

from conformance.adapters.resource_server import (
    ResourceServerContext,
    metadata_url_for,
    resource_for_metadata_url,
)
from conformance.checks import Skipped, check
from conformance.recorder import Exchange
from conformance.www_authenticate import Challenge, ChallengeError, parse

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def bearer_challenge(response: httpx.Response) -> tuple[Challenge | None, str]:
    """The Bearer challenge of a response and a parse problem, if any (RFC 9110 §11.6.1:
    several header lines are one comma-joined list)."""
    lines = response.headers.get_list("www-authenticate")
    if not lines:
        return None, "no WWW-Authenticate header"
    challenges: list[Challenge] = []
    for line in lines:
        try:
            challenges += parse(line)
        except ChallengeError as error:
            return None, f"WWW-Authenticate does not parse: {error}"
    for challenge in challenges:
        if challenge.is_scheme("Bearer"):
            return challenge, ""
    return None, f"no Bearer challenge among {[c.scheme for c in challenges]}"


async def bare(ctx: ResourceServerContext) -> tuple[httpx.Response, Exchange]:
    return await ctx.get(ctx.url, from_message=False)


async def metadata(ctx: ResourceServerContext) -> tuple[str, bool, dict[str, Any], Exchange]:
    """(metadata URL, whether it came from the challenge, document, exchange)."""
    response, _ = await bare(ctx)
    challenge, _ = bearer_challenge(response)
    named = challenge.params.get("resource_metadata") if challenge else None
    url = named or metadata_url_for(ctx.url)
    answer, exchange = await ctx.get(url, from_message=bool(named))
    document = ctx.json(answer)
    if answer.status_code != 200 or not isinstance(document, dict):
        raise Skipped(f"no usable Protected Resource Metadata at {url} (see RSV-DSC-001)")
    return url, bool(named), document, exchange


def secure_url(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    if parts.fragment or not parts.netloc:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)


def empty_members(document: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in document.items() if v is None or v in ([], {}, ""))


def as_metadata_url(issuer: str) -> str:
    parts = urlsplit(issuer)
    path = "" if parts.path in ("", "/") else parts.path
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}"


@check("RSV-CNS-001", "RSV-CNS-002", "RSV-CNS-003")
async def a_bare_request_gets_a_bearer_challenge(ctx: ResourceServerContext) -> None:
    response, exchange = await bare(ctx)
    challenge, problem = bearer_challenge(response)
    ctx.require(
        "RSV-CNS-001",
        response.status_code == 401 and challenge is not None,
        f"a request without a token must get 401 with a Bearer challenge: got "
        f"{response.status_code}{', ' + problem if problem else ''}",
        exchange,
    )
    if challenge is None:
        ctx.cannot_judge("RSV-CNS-002", "there is no Bearer challenge to read")
        ctx.cannot_judge("RSV-CNS-003", "there is no Bearer challenge to read")
        return
    ctx.require(
        "RSV-CNS-002",
        bool(challenge.params.get("resource_metadata")),
        "the Bearer challenge names no resource_metadata (RFC 9728 §5.1)",
        exchange,
    )
    ctx.require(
        "RSV-CNS-003",
        "error" not in challenge.params,
        f"a request with no credentials got error={challenge.params.get('error')!r} "
        "(RFC 6750 §3.1: SHOULD NOT)",
        exchange,
    )


@check("RSV-CNS-004")
async def an_unknown_token_gets_invalid_token(ctx: ResourceServerContext) -> None:
    forged = "provspec-" + secrets.token_urlsafe(24)
    response, exchange = await ctx.get(
        ctx.url, from_message=False, headers={"Authorization": f"Bearer {forged}"}
    )
    challenge, problem = bearer_challenge(response)
    error = challenge.params.get("error") if challenge else None
    ctx.require(
        "RSV-CNS-004",
        response.status_code == 401 and error == "invalid_token",
        f'an unknown token must get 401 with error="invalid_token": got {response.status_code}, '
        f"error {error!r}{', ' + problem if problem else ''}",
        exchange,
    )


@check("RSV-DSC-001", "RSV-DSC-002", "RSV-DSC-003", "RSV-DSC-004", "RSV-DSC-005", "RSV-DSC-006")
async def protected_resource_metadata(ctx: ResourceServerContext) -> None:
    response, _ = await bare(ctx)
    challenge, _ = bearer_challenge(response)
    named = challenge.params.get("resource_metadata") if challenge else None
    url = named or metadata_url_for(ctx.url)
    answer, exchange = await ctx.get(url, from_message=bool(named))
    document = ctx.json(answer)
    content_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    ctx.require(
        "RSV-DSC-001",
        answer.status_code == 200
        and content_type == "application/json"
        and isinstance(document, dict),
        f"GET {url} must answer 200 application/json with a JSON object: got "
        f"{answer.status_code} {content_type!r}",
        exchange,
    )
    if not isinstance(document, dict):
        for requirement in (
            "RSV-DSC-002",
            "RSV-DSC-003",
            "RSV-DSC-004",
            "RSV-DSC-005",
            "RSV-DSC-006",
        ):
            ctx.cannot_judge(requirement, "there is no metadata document to judge")
        return
    resource = document.get("resource")
    ctx.require(
        "RSV-DSC-002",
        isinstance(resource, str) and bool(resource),
        f"resource is REQUIRED (RFC 9728 §2): got {resource!r}",
        exchange,
    )
    built_from = resource_for_metadata_url(url)
    if built_from is None:
        ctx.cannot_judge(
            "RSV-DSC-003", f"{url} is not a well-known URL built from a resource identifier"
        )
    else:
        candidates = {built_from}
        if urlsplit(built_from).path == "":
            candidates.add(built_from + "/")  # §3.1 drops a lone "/" after the host
        ctx.require(
            "RSV-DSC-003",
            resource in candidates,
            f"resource {resource!r} is not identical to {built_from!r}, the identifier the "
            "metadata URL was built from (RFC 9728 §3.3)",
            exchange,
        )
    if named:
        ctx.require(
            "RSV-DSC-004",
            resource == ctx.url,
            f"resource {resource!r} is not identical to the requested URL {ctx.url!r}; a client "
            "MUST NOT use this metadata (RFC 9728 §3.3)",
            exchange,
        )
    else:
        ctx.cannot_judge("RSV-DSC-004", "the challenge named no resource_metadata URL")
    ctx.require(
        "RSV-DSC-005",
        not empty_members(document),
        f"zero-valued parameters must be omitted (RFC 9728 §3.2): {empty_members(document)}",
        exchange,
    )
    urls = {"resource": resource}
    if "jwks_uri" in document:
        urls["jwks_uri"] = document["jwks_uri"]
    for index, issuer in enumerate(document.get("authorization_servers") or []):
        urls[f"authorization_servers[{index}]"] = issuer
    insecure = [f"{name}: {value!r}" for name, value in urls.items() if not secure_url(value)]
    ctx.require(
        "RSV-DSC-006",
        not insecure,
        f"these must be https URLs without a fragment: {insecure}",
        exchange,
    )


@check("RSV-DSC-007", "RSV-DSC-008", "RSV-DSC-009", "RSV-DSC-010")
async def authorization_servers(ctx: ResourceServerContext) -> None:
    _, _, document, exchange = await metadata(ctx)
    if "authorization_servers" not in document:
        for requirement in ("RSV-DSC-007", "RSV-DSC-008", "RSV-DSC-009", "RSV-DSC-010"):
            ctx.cannot_judge(requirement, "the metadata lists no authorization_servers (optional)")
        return
    servers = document["authorization_servers"]
    listed = (
        isinstance(servers, list) and bool(servers) and all(isinstance(s, str) for s in servers)
    )
    ctx.require(
        "RSV-DSC-007",
        listed,
        f"authorization_servers must be a non-empty array of issuer strings: {servers!r}",
        exchange,
    )
    if not listed:
        for requirement in ("RSV-DSC-008", "RSV-DSC-009", "RSV-DSC-010"):
            ctx.cannot_judge(requirement, "no issuer to follow")
        return
    for issuer in servers:
        answer, as_exchange = await ctx.get(as_metadata_url(issuer))
        as_document = ctx.json(answer)
        ok = answer.status_code == 200 and isinstance(as_document, dict)
        ctx.require(
            "RSV-DSC-008",
            ok and as_document.get("issuer") == issuer,
            f"{as_metadata_url(issuer)} must answer 200 JSON with issuer identical to "
            f"{issuer!r} (RFC 8414 §3.3): got {answer.status_code}, issuer "
            f"{(as_document or {}).get('issuer') if isinstance(as_document, dict) else None!r}",
            as_exchange,
        )
        if not ok:
            continue
        code_grant = "code" in (as_document.get("response_types_supported") or [])
        missing = [
            name
            for name in ("response_types_supported",)
            + (("authorization_endpoint", "token_endpoint") if code_grant else ())
            if not as_document.get(name)
        ]
        ctx.require(
            "RSV-DSC-009",
            not missing,
            f"{issuer}: RFC 8414 §2 members missing: {missing}",
            as_exchange,
        )
        methods = as_document.get("code_challenge_methods_supported")
        ctx.require(
            "RSV-DSC-010",
            isinstance(methods, list) and "S256" in methods,
            f"{issuer}: code_challenge_methods_supported is {methods!r}, without S256",
            as_exchange,
        )
