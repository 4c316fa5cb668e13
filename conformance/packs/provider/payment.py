"""Payment, redemption and the cap, judged from what the provider answers and what it sends
to the suite's redemption endpoint."""

from __future__ import annotations

import secrets
from typing import Any

from conformance.adapters.provider import ProviderContext
from conformance.checks import Skipped, check
from conformance.client import ATTESTATION_TYP
from conformance.packs.provider._helpers import (
    Price,
    error_code,
    failing_payment_credentials,
    paid_provision,
    payment_credentials,
    provision,
)
from conformance.packs.provider._metadata_probe import judge_metadata_fetches
from conformance.packs.provider._payment import (
    paid_setup,
    provisioned,
    redemptions,
    refused_itself,
    refused_without_redeeming,
    sent_amount,
)
from conformance.recorder import shows
from mocks.orchestrator import HTTPProblem
from wire import jose


@check("PRV-PAY-001")
async def paid_service_needs_payment_credentials(ctx: ProviderContext) -> None:
    bearer, entry = await paid_setup(ctx)
    response, exchange = await provision(ctx, str(entry["id"]), bearer=bearer)
    ok = (
        response.status_code == 400
        and error_code(ctx.json(response)) == "requires_payment_credentials"
    )
    ctx.require(
        "PRV-PAY-001",
        ok,
        "a paid service without payment_credentials must get 400 requires_payment_credentials",
        exchange,
    )


@check(
    "PRV-PAY-008",
    "PRV-RED-001",
    "PRV-RED-002",
    "PRV-RED-003",
    "PRV-RED-004",
    "PRV-RED-008",
)
async def paid_service_is_provisioned_only_after_a_valid_redemption(ctx: ProviderContext) -> None:
    bearer, entry = await paid_setup(ctx)
    mark = ctx.recorder.mark
    response, exchange, body = await paid_provision(ctx, entry, bearer=bearer)
    token = str(body["payment_credentials"]["app_payment_token"])
    _, claims, _ = jose.unverified_parts(token)
    calls = redemptions(ctx, mark)
    complete = provisioned(ctx, response)
    succeeded = [call for call in calls if call.status == 201]
    ctx.require(
        "PRV-PAY-008",
        not complete or bool(succeeded),
        "a paid service was provisioned without a successful redemption",
        exchange,
    )
    ctx.require(
        "PRV-RED-001",
        bool(calls),
        f"no redemption reached the orchestrator's redemption_endpoint (the provisioning was "
        f"answered {response.status_code} {error_code(ctx.json(response)) or ''})",
        exchange,
    )
    for call in calls:
        amount, currency, sent = sent_amount(call)
        ctx.require(
            "PRV-RED-001",
            shows(sent, token),
            "the redemption does not carry the payment token the provisioning request carried",
            call,
        )
        ctx.require(
            "PRV-RED-002",
            "idempotency-key" in call.request_headers,
            "the redemption has no Idempotency-Key",
            call,
        )
        # A 401 because the suite could not load the provider's keys (its metadata is wrong)
        # is the discovery requirements' failure; RED-003 judges the signature itself.
        refused_signature = call.status == 401 and "attestation refused" in call.response_body
        ctx.require(
            "PRV-RED-003",
            ctx.params.attestation_header.lower() in call.request_headers and not refused_signature,
            f"the redemption is not signed with a valid {ctx.params.attestation_header}",
            call,
        )
        ctx.require(
            "PRV-RED-004",
            isinstance(amount, int)
            and not isinstance(amount, bool)
            and amount <= claims["max_amount"]
            and currency == claims["currency"],
            f"the redemption asks {amount!r} {currency!r} on a token of at most "
            f"{claims['max_amount']} {claims['currency']}",
            call,
        )
    if not complete:
        ctx.cannot_judge(
            "PRV-RED-008",
            f"the paid provisioning was answered {response.status_code} "
            f"{error_code(ctx.json(response)) or ''}, so there is no payment to count",
        )
        return
    if not succeeded:
        ctx.cannot_judge(
            "PRV-RED-008",
            "blocked by PRV-PAY-008: the provisioning succeeded with no successful redemption",
        )
        return
    keys = {call.request_headers.get("idempotency-key") for call in calls}
    price = Price.of(entry)
    amounts = {sent_amount(call)[:2] for call in succeeded}
    expected = {(price.amount, claims["currency"])} if price.amount is not None else None
    ctx.require(
        "PRV-RED-008",
        len(keys) == 1 and bool(succeeded) and (expected is None or amounts == expected),
        f"the paid provisioning was redeemed {len(keys)} time(s) (distinct Idempotency-Keys), "
        f"{len(succeeded)} successfully, for {sorted(map(str, amounts))}"
        + (f"; the price is {price.amount} {claims['currency']}" if expected else ""),
        exchange,
        *calls[:2],
    )


@check("PRV-RED-009")
async def every_payment_has_an_idempotency_key_of_its_own(ctx: ProviderContext) -> None:
    """Two purchases of one service by one user, each with its own token and project."""
    bearer, entry = await paid_setup(ctx)
    mark = ctx.recorder.mark
    for _ in range(2):
        await paid_provision(ctx, entry, bearer=bearer)
    calls = redemptions(ctx, mark)
    by_token: dict[Any, set[Any]] = {}
    for call in calls:
        by_token.setdefault(sent_amount(call)[2], set()).add(
            call.request_headers.get("idempotency-key")
        )
    if len(by_token) < 2:
        raise Skipped(
            f"the provider redeemed {len(by_token)} of the two payments (see PRV-RED-001), so "
            "there are not two payments to compare"
        )
    first, second = (keys - {None} for keys in list(by_token.values())[:2])
    if not first or not second:
        raise Skipped("blocked by PRV-RED-002: a redemption carried no Idempotency-Key")
    ctx.require(
        "PRV-RED-009",
        not (first & second),
        f"two different payments were redeemed under the same Idempotency-Key "
        f"{sorted(map(str, first & second))}",
        *calls[:2],
    )


@check("PRV-PAY-009", "PRV-RED-004")
async def a_token_below_the_price_is_refused_before_redeeming(ctx: ProviderContext) -> None:
    bearer, entry = await paid_setup(ctx)
    mark = ctx.recorder.mark
    response, exchange, _ = await paid_provision(ctx, entry, bearer=bearer, max_amount=1)
    calls = redemptions(ctx, mark)
    ok = (
        response.status_code == 402
        and error_code(ctx.json(response)) == "amount_exceeds_token"
        and not calls
    )
    ctx.require(
        "PRV-PAY-009",
        ok,
        "a token whose max_amount (1) is below the price must get 402 amount_exceeds_token, "
        f"unredeemed (got {response.status_code} {error_code(ctx.json(response)) or ''}, "
        f"{len(calls)} redemption(s))",
        exchange,
    )
    ctx.judged("PRV-RED-004")  # every redemption it sent is below; none at all keeps the rule
    for call in calls:
        amount = sent_amount(call)[0]
        ctx.require(
            "PRV-RED-004",
            isinstance(amount, int) and amount <= 1,
            f"redeemed {amount} against max_amount 1",
            call,
        )


@check("PRV-PAY-003", "PRV-PAY-004", "PRV-PAY-005", "PRV-PAY-006", "PRV-PAY-007")
async def bad_payment_tokens_provision_nothing(ctx: ProviderContext) -> None:
    bearer, entry = await paid_setup(ctx)
    stranger = jose.generate_key("EdDSA", kid=ctx.core.signing_key.kid)
    good = payment_credentials(ctx, str(entry["id"]), price=Price.of(entry))
    _, claims, _ = jose.unverified_parts(good["app_payment_token"])
    now = int(claims["iat"])

    def raw(token: str) -> dict[str, Any]:
        return {"type": "app_payment_token", "app_payment_token": token}

    for requirement, why, change in (
        ("PRV-PAY-004", "for another provider", {"aud": "https://other-provider.invalid/api/"}),
        ("PRV-PAY-005", "expired", {"iat": now - 1200, "exp": now - 300}),
        ("PRV-PAY-005", "valid for an hour", {"exp": now + 3600}),
        ("PRV-PAY-007", "for another service", {"service_id": "provspec-other-service"}),
    ):
        await refused_without_redeeming(ctx, requirement, why, bearer, entry, **change)
    # Signed wrongly: the request's own claims, re-signed (the project_id must still match).
    for requirement, why, key, typ in (
        ("PRV-PAY-003", "signed by a key not in the JWKS", stranger, "app-payment+jwt"),
        ("PRV-PAY-006", "typed as an attestation", ctx.core.signing_key, ATTESTATION_TYP),
    ):
        mark = ctx.recorder.mark
        project = "proj_" + secrets.token_hex(6)
        token = jose.sign({**claims, "project_id": project}, key, typ=typ)
        body = {
            "service_id": str(entry["id"]),
            "project_id": project,
            "configuration": {},
            "payment_credentials": raw(token),
        }
        response, exchange = await ctx.call(
            "POST", "provisioning/resources", body=body, bearer=bearer
        )
        refused_itself(ctx, requirement, why, mark, response, exchange)


@check("PRV-PAY-011", "PRV-PAY-012", "PRV-PAY-014")
async def payment_tokens_bind_the_request_they_pay_for(ctx: ProviderContext) -> None:
    bearer, entry = await paid_setup(ctx)
    price = Price.of(entry)
    currency = price.currency or ctx.params.default_cap.currency
    other = "eur" if currency != "eur" else "usd"
    await refused_without_redeeming(
        ctx,
        "PRV-PAY-011",
        "minted for another project",
        bearer,
        entry,
        project_id="proj_" + secrets.token_hex(6),
    )
    await refused_without_redeeming(
        ctx, "PRV-PAY-012", f"in {other} for a price in {currency}", bearer, entry, currency=other
    )
    await refused_without_redeeming(
        ctx,
        "PRV-PAY-014",
        "minted for another user",
        bearer,
        entry,
        sub="usr_" + secrets.token_hex(8),
    )


@check("PRV-PAY-013")
async def payment_tokens_never_name_their_own_key(ctx: ProviderContext) -> None:
    """Signed by a key the orchestrator never published, which the token embeds (jwk) or
    names at a URL the suite serves (jku): refused, unredeemed, the URL never fetched."""
    bearer, entry = await paid_setup(ctx)
    attacker = jose.generate_key("EdDSA", kid="provspec-attacker")
    jku = f"{ctx.core.issuer}/provspec-keys-{secrets.token_hex(6)}/jwks.json"
    with ctx.serving({jku: jose.jwks([attacker])}):
        for why, header in (
            ("signed by the key its jwk header embeds", {"jwk": attacker.public_jwk()}),
            ("signed by a key its jku header names", {"jku": jku}),
        ):
            mark = ctx.recorder.mark
            project = "proj_" + secrets.token_hex(6)
            good = payment_credentials(ctx, str(entry["id"]), project, price=Price.of(entry))
            _, claims, _ = jose.unverified_parts(good["app_payment_token"])
            token = jose.sign(claims, attacker, typ="app-payment+jwt", **header)
            body = {
                "service_id": str(entry["id"]),
                "project_id": project,
                "configuration": {},
                "payment_credentials": {"type": "app_payment_token", "app_payment_token": token},
            }
            response, exchange = await ctx.call(
                "POST", "provisioning/resources", body=body, bearer=bearer
            )
            fetched = [e for e in ctx.received(mark) if e.url.split("?")[0] == jku]
            forwarded = redemptions(ctx, mark)
            ctx.require(
                "PRV-PAY-013",
                400 <= response.status_code < 500 and not forwarded and not fetched,
                f"a payment token {why} was not refused by the provider itself: "
                f"{response.status_code}, {len(forwarded)} redemption(s) sent"
                + (", and the provider fetched the jku" if fetched else ""),
                exchange,
                *fetched[:1],
                *forwarded[:1],
            )


@check("PRV-CAP-001", "PRV-CAP-002", "PRV-CAP-003")
async def a_cap_refusal_provisions_nothing_and_is_relayed(ctx: ProviderContext) -> None:
    bearer, entry = await paid_setup(ctx)
    ctx.core.ledger.set_limit(ctx.user.id, ctx.base_url, 1)
    mark = ctx.recorder.mark
    response, exchange, _ = await paid_provision(ctx, entry, bearer=bearer)
    refused = [
        call
        for call in redemptions(ctx, mark)
        if call.status == 402 and "spend_cap_exceeded" in call.response_body
    ]
    document = ctx.json(response)
    if not refused:
        why = (
            "blocked by PRV-RED-001: the provider sent no redemption, so the orchestrator "
            f"had nothing to refuse (the provisioning was answered {response.status_code})"
        )
        for requirement in ("PRV-CAP-001", "PRV-CAP-002", "PRV-CAP-003"):
            ctx.cannot_judge(requirement, why)
        return
    ctx.require(
        "PRV-CAP-001",
        not provisioned(ctx, response),
        "the provider provisioned although the orchestrator refused the charge",
        exchange,
        refused[0],
    )
    relayed = (
        response.status_code == 402
        and isinstance(document, dict)
        and document.get("status") == "error"
        and error_code(document) == "spend_cap_exceeded"
    )
    ctx.require(
        "PRV-CAP-002",
        relayed,
        "the provider must answer 402 spend_cap_exceeded in the status envelope after a cap "
        f"refusal, got {response.status_code} {error_code(document) or ''}",
        exchange,
    )
    ctx.require(
        "PRV-CAP-003",
        not relayed or (isinstance(document, dict) and isinstance(document.get("cap"), dict)),
        "the provider's refusal should carry the cap figures",
        exchange,
    )


@check("PRV-PAY-002", "PRV-CAP-004", "PRV-PAY-010")
async def only_an_activatable_shared_payment_token_pays(ctx: ProviderContext) -> None:
    bearer, entry = await paid_setup(ctx)
    service = str(entry["id"])
    for why, credentials in (
        ("a card instead of a shared payment token", {"type": "card", "card": "tok_visa"}),
        (
            "a token value without the spt_ prefix",
            {"type": "stripe_payment_token", "stripe_payment_token": "tok_provspec"},
        ),
    ):
        response, exchange = await provision(
            ctx, service, bearer=bearer, payment_credentials=credentials
        )
        ctx.require(
            "PRV-PAY-002",
            response.status_code == 400 and not provisioned(ctx, response),
            f"{why} must be refused with 400 (got {response.status_code})",
            exchange,
        )
    # Well-formed, but never issued: activating it fails at any real provider.
    response, exchange = await provision(
        ctx, service, bearer=bearer, payment_credentials=failing_payment_credentials(ctx)
    )
    document = ctx.json(response)
    code = error_code(document)
    refused = (
        response.status_code == 400
        and isinstance(document, dict)
        and document.get("status") == "error"
        and code in ("billing_activation_failed", "requires_payment_credentials")
    )
    ctx.require(
        "PRV-CAP-004",
        refused and not provisioned(ctx, response),
        "a shared payment token that cannot be activated must get 400 billing_activation_failed "
        f"(or requires_payment_credentials) in the status envelope, got {response.status_code} "
        f"{code or ''}".rstrip(),
        exchange,
    )
    if not refused:
        ctx.cannot_judge("PRV-PAY-010", "blocked by PRV-CAP-004: the payment was not refused")
        return
    named = document.get("id") if isinstance(document, dict) else None
    if not isinstance(named, str) or not named:
        ctx.judged("PRV-PAY-010")  # the refusal names no resource: none was left to find
        return
    after, after_exchange = await ctx.call("GET", f"provisioning/resources/{named}", bearer=bearer)
    leftover = provisioned(ctx, after) and "access_configuration" in after.text
    ctx.require(
        "PRV-PAY-010",
        not leftover,
        f"the refused paid provisioning left resource {named!r} behind, served complete with "
        "credentials",
        exchange,
        after_exchange,
    )


@check("PRV-RED-005")
async def a_failed_redemption_provisions_nothing(ctx: ProviderContext) -> None:
    bearer, entry = await paid_setup(ctx)

    async def unavailable() -> None:
        raise HTTPProblem(503, "temporarily_unavailable", "provspec: the ledger is down")

    previous = ctx.core.settings.before_charge
    ctx.core.settings.before_charge = unavailable
    try:
        mark = ctx.recorder.mark
        response, exchange, _ = await paid_provision(ctx, entry, bearer=bearer)
    finally:
        ctx.core.settings.before_charge = previous
    if not [call for call in redemptions(ctx, mark) if call.status == 503]:
        raise Skipped("the provider did not redeem (see PRV-PAY-008), so no redemption failed")
    document = ctx.json(response)
    ctx.require(
        "PRV-RED-005",
        not provisioned(ctx, response)
        and response.status_code >= 400
        and error_code(document) is not None,
        "after a failed redemption the provider must provision nothing and answer an error "
        f"envelope (got {response.status_code})",
        exchange,
    )


@check("PRV-RED-007")
async def orchestrator_metadata_is_fetched_safely_and_compared_exactly(
    ctx: ProviderContext,
) -> None:
    """Two paid provisionings, each attested with a key the provider has not seen (a rotated
    key makes it fetch the orchestrator's metadata and JWKS again), while the suite serves:

    1. metadata whose issuer is the trusted issuer plus a trailing slash, naming a fresh JWKS
       URL. RFC 8414 §3.3: such metadata MUST NOT be used, so that URL must never be fetched;
    2. metadata with the exact issuer whose jwks_uri is at an internal address (link-local,
       or a private address of this host). DESIGN.md §5 / RFC 9728 §7.7: never fetched.

    Each half is judged only when the provider fetched the metadata during its probe; one it
    cached earlier and did not refetch says nothing, and the check says so."""
    await judge_metadata_fetches(ctx)


@check("PRV-RED-006")
async def a_retried_redemption_keeps_its_idempotency_key(ctx: ProviderContext) -> None:
    """A transient failure (503) is the one the suite can cause without outwaiting the
    provider's own timeout; whatever the provider retries must reuse the key it sent."""
    bearer, entry = await paid_setup(ctx)

    async def unavailable() -> None:
        raise HTTPProblem(503, "temporarily_unavailable", "provspec: try again")

    previous = ctx.core.settings.before_charge
    ctx.core.settings.before_charge = unavailable
    try:
        mark = ctx.recorder.mark
        await paid_provision(ctx, entry, bearer=bearer)
    finally:
        ctx.core.settings.before_charge = previous
    sent = redemptions(ctx, mark)
    if len(sent) < 2:
        raise Skipped(
            f"the provider sent {len(sent)} redemption(s) and no retry after a 503, so there "
            "is no retry to judge"
        )
    keys = {call.request_headers.get("idempotency-key") for call in sent}
    ctx.require(
        "PRV-RED-006",
        len(keys) == 1 and None not in keys,
        f"the provider retried the redemption with {len(keys)} different Idempotency-Key(s)",
        *sent[:3],
    )
