"""Credential custody: what the orchestrator keeps, where its tokens go, what it prints.

The suite's providers know every token and credential they handed out (their answers are
kept raw) and every request that carried one back, so custody is judged from both ends: the
env command's names and file, the URLs and Authorization headers the providers received,
the CLI's stderr, and what `env --reveal` shows after an adversarial answer.
"""

from __future__ import annotations

import json
import stat
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
    RawRequest,
)
from conformance.checks import check
from conformance.packs.orchestrator._probes import (
    answer_of,
    contains,
    creations,
    form,
    marker,
    replace_json,
    serve,
)

CREATE = "/provisioning/resources"
SECRET_PARAMETERS = frozenset(
    {"access_token", "refresh_token", "token", "api_key", "apikey", "key", "payment_token"}
)


def _revealed(ctx: OrchestratorContext) -> str:
    _, envelope = ctx.cli("env", "--reveal")
    return json.dumps(envelope)


def _complete(resource_id: str, service_id: str, credential: str) -> dict[str, Any]:
    return {
        "status": "complete",
        "id": resource_id,
        "service_id": service_id,
        "complete": {"access_configuration": {"api_key": credential}},
    }


def _original_id(document: Any) -> str:
    value = document.get("id") if isinstance(document, dict) else None
    return value if isinstance(value, str) and value else "res_provspec"


@check("ORC-CRD-003")
async def env_names_follow_the_resource_name(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    name = marker("crd-name")
    mark = ctx.recorder.mark
    add, _ = ctx.cli("add", f"{PROVIDER_NAME}/free", "--name", name)
    made = [answer_of(raw) for raw in creations(ctx, mark)]
    access = next(
        (
            answer["complete"]["access_configuration"]
            for answer in made
            if isinstance(answer, dict)
            and isinstance(answer.get("complete"), dict)
            and isinstance(answer["complete"].get("access_configuration"), dict)
        ),
        None,
    )
    if not access:
        ctx.require("ORC-CRD-003", False, "could not provision a free service to name", add)
        return
    call, env = ctx.cli("env")
    variables = ctx.data_of(call, env).get("variables") or {}
    prefix = name.upper().replace("-", "_")
    expected = sorted(f"{prefix}_{key.upper()}" for key in access)
    missing = [variable for variable in expected if variable not in variables]
    ctx.require(
        "ORC-CRD-003",
        not missing,
        f"resource {name!r} with credentials {sorted(access)} must appear as {expected}; "
        f"missing {missing}",
        call,
    )


@check("ORC-CRD-004")
async def no_token_in_a_url(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    await ctx.add("free")
    await ctx.add(
        "registrar:domain",
        "--confirm-paid-service",
        "--config",
        json.dumps({"domain_query": "provspec-example"}),
    )
    ctx.cli("status")
    known = ctx.handed_out()
    known |= {
        value: kind
        for value, kind in ctx.sent_secrets().items()
        if kind.startswith(("payment", "authorization"))
    }
    if ctx.target.raw:
        ctx.judged("ORC-CRD-004")  # requests arrived; only one with a query can break it
    for raw in ctx.target.raw:
        if not raw.query:
            continue
        pairs = parse_qsl(raw.query, keep_blank_values=True)
        found = contains(raw.query + " " + " ".join(v for _, v in pairs), known)
        named = sorted({key for key, value in pairs if key.lower() in SECRET_PARAMETERS and value})
        ctx.require(
            "ORC-CRD-004",
            not found and not named,
            f"{raw.provider} {raw.method} {raw.path}: the query string carries {found + named}",
            ctx.exchange(raw),
        )


@check("ORC-CRD-005")
async def only_a_complete_resource_hands_over_credentials(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    await ctx.add("free")
    planted = marker("early-credential")

    def early(document: Any) -> Any:
        answer = _complete(_original_id(document), "free", planted)
        answer["status"] = "pending"
        answer["pending"] = {"message": "still working"}
        return answer

    with ctx.tampered(CREATE, replace_json(early)):
        call, _ = await ctx.add("free")
    ctx.require(
        "ORC-CRD-005",
        planted not in _revealed(ctx),
        "credentials that came with a pending answer were stored (env --reveal shows them)",
        call,
    )


def _refreshes(ctx: OrchestratorContext, since: int) -> list[RawRequest]:
    return [
        raw
        for raw in ctx.received(since, "/oauth/token")
        if raw.method == "POST" and form(raw).get("grant_type") == "refresh_token"
    ]


@check("ORC-CRD-006")
async def after_a_refresh_only_the_new_tokens_are_used(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    mark = ctx.recorder.mark
    add, _ = await ctx.add("free")
    issued = [
        answer
        for raw in ctx.received(mark, "/oauth/token")
        for answer in [answer_of(raw)]
        if isinstance(answer, dict) and isinstance(answer.get("access_token"), str)
    ]
    if not issued:
        ctx.require("ORC-CRD-006", False, "could not connect to the provider", add)
        return
    state = ctx.provider.state
    calls = [add]
    for _round in range(2):
        # The provider revokes the access token it gave, as an expiry would: the orchestrator
        # may refresh, and must then use only what the refresh issued.
        for answer in issued[-1:]:
            state.revoke_access(str(answer["access_token"]))
        call, _ = await ctx.add("free")
        calls.append(call)
        issued = [
            answer
            for raw in ctx.received(mark, "/oauth/token")
            for answer in [answer_of(raw)]
            if isinstance(answer, dict) and isinstance(answer.get("access_token"), str)
        ]
    refreshes = [raw for raw in _refreshes(ctx, mark) if raw.status == 200]
    if not refreshes:
        ctx.cannot_judge("ORC-CRD-006", "the orchestrator never refreshed its provider token")
        return
    # Walk the provider's view in order: after each successful refresh, the tokens it replaced
    # must never be presented again.
    retired: set[str] = set()
    for raw in ctx.received(mark):
        presented = {form(raw).get("refresh_token", "")}
        presented.add(raw.headers.get("authorization", "").partition(" ")[2].strip())
        stale = sorted(token for token in presented - {""} if token in retired)
        ctx.require(
            "ORC-CRD-006",
            not stale,
            f"{raw.method} {raw.path} presented a token a refresh had replaced",
            ctx.exchange(raw),
            *calls,
        )
        if raw in refreshes:
            answer = answer_of(raw)
            retired.add(form(raw).get("refresh_token", ""))
            old = _access_before(ctx, mark, raw)
            if old:
                retired.add(old)
            if isinstance(answer, dict) and "refresh_token" not in answer:
                retired.discard(form(raw).get("refresh_token", ""))  # RFC 6749 §6: kept


def _access_before(ctx: OrchestratorContext, mark: int, refresh: RawRequest) -> str:
    """The access token the refresh token of `refresh` was issued with."""
    wanted = form(refresh).get("refresh_token")
    for raw in ctx.received(mark, "/oauth/token"):
        answer = answer_of(raw)
        if isinstance(answer, dict) and answer.get("refresh_token") == wanted:
            return str(answer.get("access_token") or "")
    return ""


@check("ORC-CRD-007")
async def a_hostile_resource_answer_stores_nothing(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    await ctx.add("free")
    for what, build in (
        (
            "duplicate member names",
            lambda rid, mark: json.dumps(_complete(rid, "free", mark)).replace(
                '"api_key": ', f'"api_key": "{mark}-2", "api_key": ', 1
            ),
        ),
        (
            "a 16 MiB body",
            lambda rid, mark: (
                json.dumps(_complete(rid, "free", mark))[:-1]
                + ', "padding": "'
                + "x" * (16 * 1024 * 1024)
                + '"}'
            ),
        ),
        (
            "nesting 10000 levels deep",
            lambda rid, mark: (
                json.dumps(_complete(rid, "free", mark))[:-1]
                + ', "extra": '
                + "[" * 10_000
                + "]" * 10_000
                + "}"
            ),
        ),
    ):
        planted = marker("hostile-credential")

        def hostile(document: Any, build: Any = build, planted: str = planted) -> Any:
            return build(_original_id(document), planted).encode()

        with ctx.tampered(CREATE, replace_json(hostile)):
            call, envelope = await ctx.add("free")
        kept = planted in _revealed(ctx)
        ctx.require(
            "ORC-CRD-007",
            envelope.get("ok") is False and not kept,
            f"a resource answer with {what} must make add answer ok false (ok "
            f"{envelope.get('ok')!r}) and store nothing ({'stored' if kept else 'nothing stored'})",
            call,
        )


@check("ORC-CRD-008")
async def stderr_carries_no_secret(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    await ctx.add("free")
    await ctx.add("pro", "--confirm-paid-service")
    with ctx.tampered(CREATE, serve(500, {"error": {"code": "server_error", "message": "boom"}})):
        await ctx.add("kv")
    known = ctx.handed_out() | ctx.sent_secrets()
    for call in ctx.recorder.cli_calls:
        _, stderr = ctx.output(call)
        found = contains(stderr, known)
        ctx.require(
            "ORC-CRD-008",
            not found,
            f"`{' '.join(call.argv[-4:])}` wrote secrets to stderr: {found}",
            call,
        )


@check("ORC-CRD-009")
async def the_env_file_is_private(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    await ctx.add("free")
    with tempfile.TemporaryDirectory(prefix="provspec-env-") as directory:
        call, envelope = ctx.cli("env", "--pull", cwd=Path(directory))
        written = Path(directory) / ".env"
        if not written.exists():
            ctx.cannot_judge(
                "ORC-CRD-009",
                f"env --pull wrote no .env file (ok {envelope.get('ok')!r})",
            )
            return
        mode = stat.S_IMODE(written.stat().st_mode)
    ctx.require(
        "ORC-CRD-009",
        mode & 0o077 == 0,
        f".env was written with mode {mode:o}, readable beyond its owner (600 expected)",
        call,
    )


@check("ORC-CRD-010")
async def an_answer_about_another_resource_stores_nothing(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    await ctx.add("free")
    planted = marker("foreign-credential")

    def other_service(document: Any) -> Any:
        return _complete(_original_id(document), "pro", planted)

    with ctx.tampered(CREATE, replace_json(other_service)):
        call, _ = await ctx.add("free")
    ctx.require(
        "ORC-CRD-010",
        planted not in _revealed(ctx),
        "the creation of free was answered for service pro; its credentials were stored",
        call,
    )
    mark = ctx.recorder.mark
    await ctx.add(
        "registrar:domain",
        "--confirm-paid-service",
        "--config",
        json.dumps({"domain_query": "provspec-example"}),
    )
    made = [answer_of(raw) for raw in creations(ctx, mark)]
    pending = [a for a in made if isinstance(a, dict) and a.get("status") == "pending"]
    if not pending:
        return
    resource_id = str(pending[-1].get("id"))
    planted = marker("foreign-credential")
    foreign = _complete("res_" + marker("other").replace("-", "_"), "registrar:domain", planted)
    with ctx.tampered(f"/provisioning/resources/{resource_id}", serve(200, foreign)):
        call, _ = ctx.cli("status")
    ctx.require(
        "ORC-CRD-010",
        planted not in _revealed(ctx),
        f"asked about {resource_id}, the provider answered for another resource id; its "
        "credentials were stored",
        call,
    )


@check("ORC-CRD-011")
async def provider_tokens_stay_with_their_provider(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    await ctx.add("free")
    await ctx.add_at(OTHER_PROVIDER_NAME, "free")
    ctx.cli("catalog")
    ctx.cli("status")
    issued: dict[str, str] = {}
    for raw in ctx.received(0, "/oauth/token", provider=None):
        answer = answer_of(raw)
        if isinstance(answer, dict):
            for member in ("access_token", "refresh_token"):
                if isinstance(answer.get(member), str):
                    issued[answer[member]] = raw.provider
    base = ctx.provider.base_path
    for raw in ctx.target.raw:
        carried = " ".join([*raw.headers.values(), raw.query, raw.body.decode("latin-1")])
        foreign = sorted(
            {owner for token, owner in issued.items() if owner != raw.provider and token in carried}
        )
        bearer = raw.headers.get("authorization", "").partition(" ")[2].strip()
        astray = issued.get(bearer) == raw.provider and not raw.path.startswith(base)
        ctx.require(
            "ORC-CRD-011",
            not foreign and not astray,
            f"{raw.provider} {raw.method} {raw.path} received "
            + (f"a token of {foreign}" if foreign else "its token outside its base URL"),
            ctx.exchange(raw),
        )
