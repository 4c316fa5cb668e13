"""The orchestrator's RFC 9728 consent client, observed from the suite's provider.

An existing account at the suite's provider makes the orchestrator's account request end in
`401` + `WWW-Authenticate: Bearer resource_metadata=…`. A sound orchestrator then discovers
the authorization server (RFC 9728, RFC 8414), validates what it reads exactly, and hands
the human an authorization URL with PKCE S256, state and the resource (RFC 8707); when the
browser comes back to its redirect URI it exchanges the code with the verifier and the same
resource. Adversarial variants are made by tampering with the suite's provider's answers
for the length of one probe, or by the suite, playing the human's browser, altering what it
brings back to the redirect URI. Documents the suite serves at made-up paths (a second PRM
URL, a second authorization server) are synthesised by the tampering: the provider itself
never changes.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
)
from conformance.checks import NotApplicable, Skipped, check
from conformance.packs.orchestrator._consent import (
    DROP,
    RETRY_BUDGET,
    Refusing,
    as_a_known_email,
    ask_for_consent,
    authorization_server_comes_from_the_prm,
    challenge_naming,
    consent_to_the_redirect,
    consent_url,
    document_at,
    form_of,
    gets,
    handed_over,
    is_loopback_or_https,
    metadata_comes_from_the_challenge_url,
    probe,
    query_of,
    redirect_to,
    resource_variants,
    rewrite_json,
    serve_json,
    tampering,
    token_requests,
    with_query,
)
from wire.pkce import s256


@check("ORC-CNS-001", "ORC-CNS-005", "ORC-CNS-010", "ORC-CNS-015")
async def consent_path_is_discovered_and_handed_to_the_human(ctx: OrchestratorContext) -> None:
    provider = ctx.provider
    with as_a_known_email(ctx):
        call, envelope, mark = await ask_for_consent(ctx)
    prm_path = urlsplit(provider.prm_url).path
    as_path = urlsplit(provider.as_metadata_url).path
    metadata_fetches = [
        r for r in ctx.received(mark) if r.method == "GET" and "/.well-known/" in r.path
    ]
    ctx.require(
        "ORC-CNS-001",
        bool(gets(ctx, mark, prm_path))
        and all(r.path in (prm_path, as_path) for r in metadata_fetches),
        f"the metadata must be fetched from the challenge's resource_metadata ({prm_path}); "
        f"fetched {[r.path for r in metadata_fetches]}",
        call,
    )
    ctx.require(
        "ORC-CNS-010",
        bool(gets(ctx, mark, as_path)),
        f"the authorization server metadata must be fetched from the RFC 8414 URL {as_path}",
        call,
    )
    url = consent_url(envelope)
    query = query_of(url)
    problems = []
    if not (query.get("code_challenge") or [""])[0]:
        problems.append("no code_challenge")
    if query.get("code_challenge_method") != ["S256"]:
        problems.append(f"code_challenge_method {query.get('code_challenge_method')}")
    if not (query.get("state") or [""])[0]:
        problems.append("no state")
    if query.get("resource") != [provider.base_url]:
        problems.append(f"resource {query.get('resource')} is not [{provider.base_url!r}]")
    if not query.get("login_hint"):
        problems.append("no login_hint")
    ctx.require(
        "ORC-CNS-005",
        bool(url) and not problems,
        f"the authorization URL handed to the human must carry PKCE S256, state, resource and "
        f"login_hint: {problems or 'no consent URL at all'}",
        call,
    )
    if url:
        ctx.require(
            "ORC-CNS-015",
            query.get("response_type") == ["code"],
            f"the authorization request must use response_type=code (RFC 9700 §2.1.2), "
            f"not {query.get('response_type')}",
            call,
        )
    else:
        ctx.cannot_judge("ORC-CNS-015", "the orchestrator handed over no authorization URL")
    await metadata_comes_from_the_challenge_url(ctx)
    await authorization_server_comes_from_the_prm(ctx)


@check("ORC-CNS-006", "ORC-CNS-016")
async def the_code_is_exchanged_with_the_verifier_and_the_same_resource(
    ctx: OrchestratorContext,
) -> None:
    with as_a_known_email(ctx):
        url, location, approval = await consent_to_the_redirect(ctx)
        mark = ctx.recorder.mark
        await ctx.get(location)
    tokens = token_requests(ctx, mark)
    if not tokens:
        ctx.require("ORC-CNS-006", False, "the redirect back led to no token request", approval)
        ctx.cannot_judge("ORC-CNS-016", "the redirect back led to no token request")
        return
    form = form_of(tokens[-1])
    asked = query_of(url)
    challenge = (asked.get("code_challenge") or [""])[0]
    verifier = form.get("code_verifier", "")
    computed = s256(verifier)
    problems = []
    if not verifier or computed != challenge:
        problems.append("the code_verifier is missing or does not match the code_challenge")
    requested = next(iter(asked.get("resource") or []), None)
    if "resource" not in form or form.get("resource") != requested:
        problems.append(
            f"resource {form.get('resource')!r} differs from the authorization request's "
            f"{requested!r}"
        )
    evidence = ctx.exchange(tokens[-1])
    ctx.require(
        "ORC-CNS-006", not problems, f"the token request after consent: {problems}", evidence
    )
    redirect = (asked.get("redirect_uri") or [""])[0]
    ctx.require(
        "ORC-CNS-016",
        bool(redirect) and is_loopback_or_https(redirect) and form.get("redirect_uri") == redirect,
        f"the authorization request's redirect_uri {redirect!r} must be https or loopback and "
        f"identical to the token request's {form.get('redirect_uri')!r}",
        approval,
        evidence,
    )


@check("ORC-CNS-007", "ORC-CNS-009")
async def a_forged_authorization_response_gets_no_token_request(ctx: OrchestratorContext) -> None:
    """The suite, as the browser, brings back the approval with the state dropped or altered
    (RFC 6749 §10.12) or with another authorization server's iss (RFC 9207 §2.4)."""
    other = ctx.target.other_provider
    with as_a_known_email(ctx):
        _, location, approval = await consent_to_the_redirect(ctx)
        state = (query_of(location).get("state") or [""])[0]
        forged = [with_query(location, state=None), with_query(location, state=state + "x")]
        mark = ctx.recorder.mark
        for variant in forged:
            await ctx.get(variant)
        followed = token_requests(ctx, mark)
        ctx.require(
            "ORC-CNS-007",
            not followed,
            "a redirect with its state dropped or altered led to a token request",
            approval,
            *(ctx.exchange(r) for r in followed[:1]),
        )
        control = ctx.recorder.mark
        await ctx.get(location)
        works = bool(token_requests(ctx, control))
    if not followed and not works:
        ctx.cannot_judge(
            "ORC-CNS-007", "the genuine redirect led to no token request either (see ORC-CNS-006)"
        )
    if other is None:
        ctx.cannot_judge("ORC-CNS-009", "the run serves no second authorization server")
        return
    with as_a_known_email(ctx):
        _, location, approval = await consent_to_the_redirect(ctx)
        mark = ctx.recorder.mark
        await ctx.get(with_query(location, iss=other.issuer))
        mixed_up = token_requests(ctx, mark)
    ctx.require(
        "ORC-CNS-009",
        not mixed_up,
        f"a redirect naming another authorization server's iss ({other.issuer!r}) led to a "
        "token request",
        approval,
        *(ctx.exchange(r) for r in mixed_up[:1]),
    )
    if not mixed_up and not works:
        ctx.cannot_judge(
            "ORC-CNS-009", "the genuine redirect led to no token request either (see ORC-CNS-006)"
        )


@check("ORC-CNS-002", "ORC-CNS-003", "ORC-CNS-004")
async def tampered_discovery_ends_the_consent_path(ctx: OrchestratorContext) -> None:
    provider = ctx.provider
    prm_path = urlsplit(provider.prm_url).path
    as_path = urlsplit(provider.as_metadata_url).path
    authorize = str(
        (await document_at(ctx, provider.as_metadata_url)).get("authorization_endpoint", "")
    )
    judged: set[str] = set()
    unread: dict[str, str] = {}
    for requirement, path, change, why in (
        (
            "ORC-CNS-002",
            prm_path,
            {"resource": provider.base_url.rstrip("/")},
            "a Protected Resource Metadata resource that differs by a trailing slash",
        ),
        (
            "ORC-CNS-003",
            as_path,
            {"issuer": provider.issuer + "/"},
            "an authorization server issuer that differs by a trailing slash",
        ),
        (
            "ORC-CNS-004",
            as_path,
            {"code_challenge_methods_supported": ["plain"]},
            "an authorization server offering PKCE plain only",
        ),
        (
            "ORC-CNS-004",
            as_path,
            {"code_challenge_methods_supported": DROP},
            "an authorization server that names no code_challenge_methods_supported",
        ),
    ):
        call, envelope, mark = await probe(ctx, (path, rewrite_json(change)))
        if handed_over(envelope, authorize) and not gets(ctx, mark, path):
            # It never read the tampered document (a cache): nothing to judge it on.
            unread.setdefault(requirement, path)
            continue
        judged.add(requirement)
        ctx.require(
            requirement,
            not handed_over(envelope, authorize),
            f"after {why} the orchestrator still handed over an authorization URL",
            call,
        )
    for requirement, path in unread.items():
        if requirement not in judged:
            ctx.cannot_judge(requirement, f"the orchestrator did not fetch {path} again")


@check("ORC-CNS-011")
async def a_new_metadata_url_is_fetched_and_validated_again(ctx: OrchestratorContext) -> None:
    """RFC 9728 §5.2: a later 401 names another resource_metadata URL, whose document names
    another resource; the earlier, valid document must not stand in for it."""
    provider = ctx.provider
    authorize = str(
        (await document_at(ctx, provider.as_metadata_url)).get("authorization_endpoint", "")
    )
    prm = await document_at(ctx, provider.prm_url)
    wrong = {**prm, "resource": provider.base_url + "elsewhere/"}
    prm_path = urlsplit(provider.prm_url).path
    _, envelope, _ = await probe(ctx, (prm_path, serve_json(wrong)))
    if handed_over(envelope, authorize):
        raise Skipped("blocked by ORC-CNS-002: a mismatched resource is not refused even once")
    second = provider.base_url + "metadata/rotated.json"
    with as_a_known_email(ctx):
        _, first, _ = await ask_for_consent(ctx)
        if not handed_over(first, authorize):
            raise Skipped("the orchestrator handed over no authorization URL (see ORC-CNS-005)")
        with tampering(
            ctx,
            ("/provisioning/account_requests", challenge_naming(second)),
            (urlsplit(second).path, serve_json(wrong)),
        ):
            call, envelope, mark = await ask_for_consent(ctx)
    fetched = bool(gets(ctx, mark, urlsplit(second).path))
    ctx.require(
        "ORC-CNS-011",
        fetched and not handed_over(envelope, authorize),
        f"a later challenge named {second!r}, whose document names another resource; the "
        + (
            "orchestrator fetched it but still handed over an authorization URL"
            if fetched
            else "orchestrator did not fetch it"
        ),
        call,
    )


@check("ORC-CNS-013")
async def resource_and_issuer_compare_code_point_by_code_point(ctx: OrchestratorContext) -> None:
    """Near misses a normalising or case-folding comparison lets through (RFC 9728 §3.3,
    RFC 8414 §3.3). A gross mismatch is probed first: an orchestrator that accepts even that
    fails ORC-CNS-002 / ORC-CNS-003, and how it compares cannot be told."""
    provider = ctx.provider
    other = ctx.target.other_provider
    if other is None:
        raise Skipped("the run serves no second provider to take a foreign identifier from")
    authorize = str(
        (await document_at(ctx, provider.as_metadata_url)).get("authorization_endpoint", "")
    )
    prm_path = urlsplit(provider.prm_url).path
    as_path = urlsplit(provider.as_metadata_url).path
    for member, path, genuine, foreign, blocker in (
        ("resource", prm_path, provider.base_url, other.base_url, "ORC-CNS-002"),
        ("issuer", as_path, provider.issuer, other.issuer, "ORC-CNS-003"),
    ):
        _, envelope, _ = await probe(ctx, (path, rewrite_json({member: foreign})))
        if handed_over(envelope, authorize):
            ctx.cannot_judge(
                "ORC-CNS-013", f"blocked by {blocker}: even another provider's {member} is accepted"
            )
            return
        for variant, differs in resource_variants(genuine):
            call, envelope, _ = await probe(ctx, (path, rewrite_json({member: variant})))
            ctx.require(
                "ORC-CNS-013",
                not handed_over(envelope, authorize),
                f"a {member} {variant!r} that differs from {genuine!r} only in {differs} did "
                "not end the consent path",
                call,
            )


@check("ORC-CNS-012")
async def unsafe_authorization_endpoints_are_refused(ctx: OrchestratorContext) -> None:
    """CVE-2025-6514 class: the authorization_endpoint is what the human's browser (or a
    shell) will open. Each hostile value must end the consent path, never become the URL."""
    provider = ctx.provider
    as_path = urlsplit(provider.as_metadata_url).path
    for hostile in (
        "javascript:alert(document.domain)//",
        "file:///etc/passwd",
        "data:text/html,<script>alert(1)</script>",
        "http://198.51.100.7/oauth/authorize",
    ):
        call, envelope, _ = await probe(
            ctx, (as_path, rewrite_json({"authorization_endpoint": hostile}))
        )
        url = consent_url(envelope)
        ctx.require(
            "ORC-CNS-012",
            not url.startswith(hostile) and (not url or is_loopback_or_https(url)),
            f"with authorization_endpoint {hostile!r} the orchestrator handed over {url!r}",
            call,
        )


@check("ORC-CNS-014")
async def repeated_auth_refusals_end_in_a_reported_failure(ctx: OrchestratorContext) -> None:
    """The provider refuses every resource creation, with 403 insufficient_scope and then
    with 401 invalid_token: the add must give up after a few attempts and say so."""
    for status, error in ((403, "insufficient_scope"), (401, "invalid_token")):
        email = ctx.new_email()
        ctx.cli("init", "--new-user", "--email", email, "--accept-tos")
        mark = ctx.recorder.mark
        with ctx.tampered("/provisioning/resources", Refusing(status, error, ctx.provider.prm_url)):
            call, envelope = await ctx.add("free")
        attempts = [r for r in ctx.received(mark, "/provisioning/resources") if r.method == "POST"]
        if not attempts:
            raise Skipped("the orchestrator sent no resource creation to be refused")
        ctx.require(
            "ORC-CNS-014",
            len(attempts) <= RETRY_BUDGET and envelope.get("ok") is False,
            f"answered {status} {error} every time, the orchestrator sent {len(attempts)} "
            f"creation requests (at most {RETRY_BUDGET}) and its add answered ok "
            f"{envelope.get('ok')!r} (must be false)",
            call,
            *(ctx.exchange(r) for r in attempts[RETRY_BUDGET : RETRY_BUDGET + 1]),
        )


@check("ORC-CNS-017")
async def metadata_redirects_are_checked_hop_by_hop(ctx: OrchestratorContext) -> None:
    """The PRM, then the authorization server metadata, answers 302 to a URL with userinfo:
    a hop any SSRF policy refuses. It points back at the suite, so following it shows."""
    provider = ctx.provider
    parts = urlsplit(provider.base_url)
    for name, path in (
        ("protected resource metadata", urlsplit(provider.prm_url).path),
        ("authorization server metadata", urlsplit(provider.as_metadata_url).path),
    ):
        hop = f"{parts.path}metadata/hop-{secrets.token_hex(3)}.json"
        target = f"{parts.scheme}://provspec@{parts.netloc}{hop}"
        call, _, mark = await probe(ctx, (path, redirect_to(target)))
        followed = gets(ctx, mark, hop)
        ctx.require(
            "ORC-CNS-017",
            not followed,
            f"the {name} redirected to {target!r} and the orchestrator followed",
            call,
            *(ctx.exchange(r) for r in followed[:1]),
        )


@check("ORC-CNS-018")
async def a_consent_token_goes_only_to_its_provider(ctx: OrchestratorContext) -> None:
    """Consent completes at the suite's provider, which hands out an access token; then the
    same user adds a service at the second provider. Nothing the second provider receives
    may carry the first one's token, in a header or a body (RFC 9728 §7.4)."""
    if ctx.target.other_provider is None:
        raise Skipped("the run serves no second provider for the token to stray to")
    with as_a_known_email(ctx):
        _, location, approval = await consent_to_the_redirect(ctx)
        mark = ctx.recorder.mark
        await ctx.get(location)
        if not token_requests(ctx, mark):
            raise Skipped("the redirect back led to no token request (see ORC-CNS-006)")
        tokens = [
            value
            for value, kind in ctx.handed_out().items()
            if kind == f"{PROVIDER_NAME} access_token"
        ]
        if not tokens:
            raise Skipped("the provider handed out no access token to follow")
        after = ctx.recorder.mark
        call, _ = await ctx.add_at(OTHER_PROVIDER_NAME, "free")
    carried = [
        r
        for r in ctx.received(after, provider=OTHER_PROVIDER_NAME)
        if any(
            token in r.body.decode("latin-1") or any(token in v for v in r.headers.values())
            for token in tokens
        )
    ]
    ctx.require(
        "ORC-CNS-018",
        not carried,
        f"{PROVIDER_NAME}'s access token was sent to {OTHER_PROVIDER_NAME} "
        f"({', '.join(f'{r.method} {r.path}' for r in carried[:3])})",
        approval,
        call,
        *(ctx.exchange(r) for r in carried[:1]),
    )


@check("ORC-CNS-008")
async def urls_from_the_challenge_pass_the_ssrf_policy(ctx: OrchestratorContext) -> None:
    if ctx.family != "app-next":
        raise NotApplicable("in 0.1d the orchestrator hands the requires_auth URL over unfetched")
    provider = ctx.provider
    parts = urlsplit(provider.base_url)
    # Userinfo in front of the host is the classic way to make a URL look like one host and
    # reach another; any SSRF policy refuses it. It points back at the suite, so a fetch shows.
    path = f"{parts.path}metadata/userinfo.json"
    hostile = f"{parts.scheme}://provspec@{parts.netloc}{path}"
    call, _, mark = await probe(
        ctx,
        ("/provisioning/account_requests", challenge_naming(hostile)),
        (path, serve_json(await document_at(ctx, provider.prm_url))),
    )
    fetched = gets(ctx, mark, path)
    ctx.require(
        "ORC-CNS-008",
        not fetched,
        f"the orchestrator fetched {hostile!r}, a URL with userinfo, from a challenge",
        call,
        *(ctx.exchange(r) for r in fetched[:1]),
    )
