"""Account requests and the token exchange, judged from the suite's provider.

Each probe starts with a fresh signed-in user, so the orchestrator has no connection yet and
its next add begins with `POST provisioning/account_requests`. The provider's answers are
made adversarial where a requirement is about what the orchestrator does with them: an
error, an answer for another request, a token of another type, the older requires_auth shape.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from conformance.adapters.orchestrator import OrchestratorContext, RawRequest
from conformance.checks import check
from conformance.packs.orchestrator._probes import (
    answer_of,
    creations,
    envelope_text,
    form,
    marker,
    replace_json,
    status_of,
    urls_in,
)
from conformance.recorder import CliCall

EXISTING_EMAIL = "existing@example.com"
"""An account the suite's providers already hold and never linked to the orchestrator."""
ACCOUNT_REQUESTS = "/provisioning/account_requests"


def _requests(ctx: OrchestratorContext, since: int) -> list[RawRequest]:
    return [raw for raw in ctx.received(since, ACCOUNT_REQUESTS) if raw.method == "POST"]


def _token_requests(ctx: OrchestratorContext, since: int) -> list[RawRequest]:
    return [raw for raw in ctx.received(since, "/oauth/token") if raw.method == "POST"]


async def _add_as(
    ctx: OrchestratorContext, email: str | None = None, *extra: str
) -> tuple[CliCall, dict[str, Any], int]:
    """Sign in afresh (as `email`), then add the free service; the call, envelope and mark."""
    ctx.sign_in(email)
    mark = ctx.recorder.mark
    call, envelope = await ctx.add("free", *extra)
    return call, envelope, mark


@check("ORC-ACC-003")
async def consent_is_handed_to_the_human_not_reported_as_done(
    ctx: OrchestratorContext,
) -> None:
    try:
        call, envelope, mark = await _add_as(ctx, EXISTING_EMAIL)
    finally:
        ctx.sign_in()
    asked = _requests(ctx, mark)
    answer = answer_of(asked[-1]) if asked else None
    if ctx.family == "app-0.1d":
        requires = answer.get("requires_auth") if isinstance(answer, dict) else None
        url = requires.get("url") if isinstance(requires, dict) else None
        handed = isinstance(url, str) and url in envelope_text(envelope)
    else:
        parts = urlsplit(ctx.provider.base_url)
        origin = f"{parts.scheme}://{parts.netloc}/"
        handed = any(found.startswith(origin) for found in urls_in(envelope))
    provisioned = envelope.get("ok") is True or status_of(envelope) == "provisioned"
    created = creations(ctx, mark)
    ctx.require(
        "ORC-ACC-003",
        not provisioned and not created and "consent" in status_of(envelope) and handed,
        "the provider asked for the human's consent: the add must not report the service as "
        f"provisioned (ok {envelope.get('ok')!r}, status {status_of(envelope)!r}, "
        f"{len(created)} creation requests), must say consent is needed, and must hand over the "
        f"provider's URL (handed over: {handed})",
        call,
    )


@check("ORC-ACC-004")
async def account_requests_expire_within_15_minutes(ctx: OrchestratorContext) -> None:
    _, _, mark = await _add_as(ctx)
    for raw in _requests(ctx, mark):
        body = ctx.body(raw)
        stamp = body.get("expires_at") if isinstance(body, dict) else None
        try:
            deadline = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
        except ValueError:
            deadline = None
        ahead = deadline - time.time() if deadline is not None else None
        ctx.require(
            "ORC-ACC-004",
            ahead is not None and ahead <= 15 * 60 + 5,
            f"expires_at {stamp!r} is {ahead if ahead is None else round(ahead)} s ahead "
            "(at most 900)",
            ctx.exchange(raw),
        )


@check("ORC-ACC-005")
async def the_account_email_is_the_signed_in_users(ctx: OrchestratorContext) -> None:
    email = ctx.sign_in()
    intruder = f"{marker('intruder')}@example.org"
    mark = ctx.recorder.mark
    call, _ = await ctx.add("free", "--config", json.dumps({"email": intruder}))
    for raw in _requests(ctx, mark):
        body = ctx.body(raw)
        sent = body.get("email") if isinstance(body, dict) else None
        ctx.require(
            "ORC-ACC-005",
            sent == email,
            f"the account request names {sent!r}; the signed-in user is {email!r} "
            f"(--config named {intruder!r})",
            call,
            ctx.exchange(raw),
        )


@check("ORC-ACC-006")
async def both_requires_auth_shapes_reach_the_human(ctx: OrchestratorContext) -> None:
    def older_shape(document: Any) -> Any:
        requires = document.get("requires_auth") if isinstance(document, dict) else None
        if isinstance(requires, dict) and "url" in requires:
            document["requires_auth"] = {"type": "redirect", "redirect": {"url": requires["url"]}}
        return document

    for shape, rule in (("{url}", None), ("{type: redirect, redirect: {url}}", older_shape)):
        try:
            if rule is None:
                call, envelope, mark = await _add_as(ctx, EXISTING_EMAIL)
            else:
                with ctx.tampered(ACCOUNT_REQUESTS, replace_json(rule)):
                    call, envelope, mark = await _add_as(ctx, EXISTING_EMAIL)
        finally:
            ctx.sign_in()
        asked = _requests(ctx, mark)
        answer = answer_of(asked[-1]) if asked else None
        requires = answer.get("requires_auth") if isinstance(answer, dict) else None
        redirect = requires.get("redirect") if isinstance(requires, dict) else None
        url = (requires or {}).get("url") or (redirect or {}).get("url")
        ctx.require(
            "ORC-ACC-006",
            isinstance(url, str) and url in envelope_text(envelope),
            f"requires_auth as {shape}: the URL {url!r} must reach the agent for the human",
            call,
        )


@check("ORC-ACC-007")
async def an_account_request_error_stops_the_add(ctx: OrchestratorContext) -> None:
    for status in (400, 200):
        code = marker("refused").replace("-", "_")

        def refuse(document: Any, status: int = status, code: str = code) -> Any:
            request_id = document.get("id") if isinstance(document, dict) else None
            return status, {
                "id": request_id,
                "type": "error",
                "error": {"code": code, "message": "the suite's provider refuses this account"},
            }

        with ctx.tampered(ACCOUNT_REQUESTS, replace_json(refuse)):
            call, envelope, mark = await _add_as(ctx)
        error = envelope.get("error")
        onward = _token_requests(ctx, mark) + creations(ctx, mark)
        ctx.require(
            "ORC-ACC-007",
            envelope.get("ok") is False and code in json.dumps(error) and not onward,
            f"account_requests answered {status} type error {code}: the add must answer ok false "
            f"carrying that code (error {json.dumps(error)[:200]}) and call nothing more "
            f"({[f'{r.method} {r.path}' for r in onward]})",
            call,
        )


@check("ORC-ACC-008")
async def the_code_is_exchanged_once_as_a_form(ctx: OrchestratorContext) -> None:
    call, _, mark = await _add_as(ctx)
    await ctx.add("kv")
    codes = [
        str(answer["oauth"]["code"])
        for raw in _requests(ctx, mark)
        for answer in [answer_of(raw)]
        if isinstance(answer, dict)
        and isinstance(answer.get("oauth"), dict)
        and isinstance(answer["oauth"].get("code"), str)
    ]
    if not codes:
        ctx.cannot_judge("ORC-ACC-008", "the provider's account request gave no oauth code")
        return
    exchanges = [raw for raw in _token_requests(ctx, mark) if form(raw).get("code") == codes[0]]
    ctx.require(
        "ORC-ACC-008",
        len(exchanges) == 1,
        f"the account request's code was sent to the token endpoint {len(exchanges)} times",
        call,
        *(ctx.exchange(raw) for raw in exchanges[1:2]),
    )
    for raw in exchanges[:1]:
        content_type = raw.headers.get("content-type", "").split(";")[0].strip().lower()
        ctx.require(
            "ORC-ACC-008",
            content_type == "application/x-www-form-urlencoded"
            and form(raw).get("grant_type") == "authorization_code",
            f"the code exchange must be form-encoded with grant_type=authorization_code "
            f"(content type {content_type!r}, grant_type {form(raw).get('grant_type')!r})",
            ctx.exchange(raw),
        )
    # Run-wide: no account request's code is ever sent twice.
    granted = {
        str(answer["oauth"]["code"])
        for raw in ctx.received(0, ACCOUNT_REQUESTS, provider=None)
        for answer in [answer_of(raw)]
        if isinstance(answer, dict) and isinstance(answer.get("oauth"), dict)
    }
    sent: dict[str, int] = {}
    for raw in ctx.received(0, "/oauth/token", provider=None):
        code = form(raw).get("code")
        if raw.method == "POST" and code in granted:
            sent[code] = sent.get(code, 0) + 1
    again = sum(1 for count in sent.values() if count > 1)
    ctx.require("ORC-ACC-008", not again, f"{again} account request codes were sent twice", call)


@check("ORC-ACC-009")
async def an_answer_for_another_request_is_refused(ctx: OrchestratorContext) -> None:
    def misaddressed(document: Any) -> Any:
        if isinstance(document, dict) and "id" in document:
            document["id"] = "acctreq_" + marker("someone-else").replace("-", "_")
        return document

    with ctx.tampered(ACCOUNT_REQUESTS, replace_json(misaddressed)):
        call, _, mark = await _add_as(ctx)
    tokens = _token_requests(ctx, mark)
    ctx.require(
        "ORC-ACC-009",
        not tokens,
        "the account_requests answer named another request's id, yet the orchestrator "
        f"exchanged its code ({len(tokens)} token requests)",
        call,
        *(ctx.exchange(raw) for raw in tokens[:1]),
    )


@check("ORC-ACC-010")
async def a_token_that_is_not_bearer_is_not_kept(ctx: OrchestratorContext) -> None:
    def typed(kind: str) -> Any:
        def change(document: Any) -> Any:
            if isinstance(document, dict) and "access_token" in document:
                document["token_type"] = kind
            return document

        return replace_json(change)

    with ctx.tampered("/oauth/token", typed("mac")):
        call, envelope, mark = await _add_as(ctx)
    issued = {
        str(answer["access_token"])
        for raw in _token_requests(ctx, mark)
        for answer in [answer_of(raw)]
        if isinstance(answer, dict) and isinstance(answer.get("access_token"), str)
    }
    retry, _ = await ctx.add("free")  # a kept token would be used now
    used = [
        raw
        for raw in ctx.received(mark, provider=None)
        if any(token in raw.headers.get("authorization", "") for token in issued)
    ]
    ctx.require(
        "ORC-ACC-010",
        bool(issued) and not used and envelope.get("ok") is not True,
        f"a token answered with token_type mac was kept and used: {len(used)} requests carried "
        f"it (first add ok {envelope.get('ok')!r})",
        call,
        retry,
        *(ctx.exchange(raw) for raw in used[:1]),
    )
    with ctx.tampered("/oauth/token", typed("BEARER")):
        call, envelope, _ = await _add_as(ctx)
    ctx.require(
        "ORC-ACC-010",
        envelope.get("ok") is True,
        "token_type BEARER is bearer (compared case-insensitively), yet the add failed: "
        f"{json.dumps(envelope.get('error'))[:200]}",
        call,
    )
