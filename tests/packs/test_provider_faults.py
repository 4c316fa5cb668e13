"""Provider checks that lean on more than one answer: the orchestrator metadata probe
(PRV-RED-007), key rotation (PRV-ATT-026), and what evidence a failure cites.

`provspec selftest` (and tests/test_engine.py) prove every fault fails exactly its
requirements against the embedded mock; these tests pin what selftest cannot see: that an
unobservable probe is reported as not judged rather than passed, that the probe also works
against a provider over real sockets, and that the evidence names the right exchange.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conformance.adapters.provider import ProviderTargetConfig, private_address
from conformance.engine import RunPlan, run_sync
from conformance.results import Finding, RunResult, Status
from mocks.hosting import ServedInThread, bind
from mocks.provider.app import ProviderMock, ProviderSettings
from spec.requirement import Role, Step
from wire.ssrf import SSRFGuard


def run(
    *faults: str,
    steps: tuple[Step, ...] = (Step.REDEMPTION,),
    base_url: str | None = None,
    orchestrator_port: int = 8401,
) -> RunResult:
    config = ProviderTargetConfig(
        profile="app-next",
        faults=faults,
        base_url=base_url,
        orchestrator_port=orchestrator_port,
        timeout=5.0,
    )
    return run_sync(RunPlan(Role.PROVIDER, "app-next", config, steps=steps, check_timeout=30))


def finding(result: RunResult, requirement: str) -> Finding:
    return next(f for f in result.findings if f.requirement.id == requirement)


def cited(result: RunResult, finding: Finding) -> list[str]:
    by_id = {exchange.id: exchange for exchange in result.recorder.exchanges}
    return [f"{by_id[i].direction} {by_id[i].method} {by_id[i].url}" for i in finding.evidence]


# --- PRV-RED-007 against the embedded mock -------------------------------------------------------
def test_the_metadata_probe_passes_a_provider_that_refetches_and_refuses() -> None:
    result = run()
    red007 = finding(result, "PRV-RED-007")
    assert red007.status is Status.PASSED, red007.message
    fetched = [
        e
        for e in result.recorder.exchanges
        if e.direction == "received" and e.url.endswith("/.well-known/app-orchestrator")
    ]
    # Both probes made the provider fetch the metadata again, and it answered the tampered
    # versions: the pass rests on observation.
    assert len(fetched) >= 3
    served = [json.loads(e.response_body) for e in fetched]
    assert any(d["issuer"] == "https://orchestrator.mock/" for d in served)
    assert any(d["jwks_uri"].startswith("http://169.254.169.254/") for d in served)


@pytest.mark.parametrize(
    ("fault", "says", "fetched"),
    [
        ("metadata-issuer-normalised", "not the trusted", "https://orchestrator.mock/provspec-"),
        ("jwks-uri-unguarded", "internal address", "http://169.254.169.254/provspec-"),
    ],
)
def test_the_metadata_probe_fails_with_the_fetch_as_evidence(
    fault: str, says: str, fetched: str
) -> None:
    result = run(fault)
    red007 = finding(result, "PRV-RED-007")
    assert red007.status is Status.FAILED
    assert says in red007.message
    evidence = cited(result, red007)
    assert any(line.startswith(f"received GET {fetched}") for line in evidence), evidence
    assert any(line.startswith("sent POST ") for line in evidence), evidence


def test_a_provider_that_never_refetches_is_not_judged_rather_than_passed() -> None:
    result = run("jwks-never-refetched", steps=(Step.ATTESTATION, Step.REDEMPTION))
    red007 = finding(result, "PRV-RED-007")
    assert red007.status is Status.SKIPPED
    assert "metadata whose issuer differs by a trailing slash" in red007.message
    assert "did not fetch the orchestrator's metadata" in red007.message
    assert "PRV-ATT-026" in red007.message
    att026 = finding(result, "PRV-ATT-026")
    assert att026.status is Status.WARNING  # a SHOULD
    assert "got 401 after 0 JWKS fetch(es)" in att026.message


# --- PRV-RED-007 against a provider over real sockets ---------------------------------------------
@contextmanager
def served_provider(*faults: str) -> Iterator[tuple[str, int]]:
    """A mock provider on loopback that trusts an orchestrator on a free loopback port: what a
    provider team runs the suite against. Yields (base URL, the orchestrator port)."""
    probe = bind("127.0.0.1", 0)
    port = probe.port
    probe.sock.close()
    listener = ServedInThread()
    mock = ProviderMock(
        ProviderSettings(
            profile="app-next",
            base_url=listener.origin + "/api/app/",
            orchestrator_issuer=f"http://127.0.0.1:{port}",
            faults=faults,
            ssrf=SSRFGuard(allow_loopback=True),
        )
    )
    with listener.serving(mock.app):
        yield listener.origin + "/api/app/", port


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("", Status.PASSED),
        ("metadata-issuer-normalised", Status.FAILED),
        ("jwks-uri-unguarded", Status.FAILED),
    ],
)
def test_the_metadata_probe_judges_a_served_provider(fault: str, expected: Status) -> None:
    if private_address() is None:
        pytest.skip("this host has no private address to serve an internal jwks_uri at")
    faults = (fault,) if fault else ()
    with served_provider(*faults) as (base_url, port):
        result = run(base_url=base_url, orchestrator_port=port)
    red007 = finding(result, "PRV-RED-007")
    assert red007.status is expected, red007.message


def test_without_a_private_address_the_ssrf_half_is_reported_not_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import conformance.adapters.provider as adapter

    monkeypatch.setattr(adapter, "private_address", lambda exclude=(): None)
    with served_provider() as (base_url, port):
        result = run(base_url=base_url, orchestrator_port=port)
    red007 = finding(result, "PRV-RED-007")
    assert red007.status is Status.SKIPPED
    assert "no private address" in red007.message
    assert "did not fetch" not in red007.message  # the issuer half was observed


def test_private_address_never_offers_an_excluded_or_loopback_address() -> None:
    address = private_address()
    if address is None:
        pytest.skip("this host has no private address")
    assert not address.startswith("127.")
    assert private_address(exclude=(address,)) is None


# --- evidence ------------------------------------------------------------------------------------
def test_a_failure_cites_the_call_not_what_the_provider_sent_meanwhile() -> None:
    """The provisioning call redeems at the suite's orchestrator side while it runs; the
    evidence of the provisioning requirement is the call itself."""
    result = run("provision-on-redemption-error")
    red005 = finding(result, "PRV-RED-005")
    assert red005.status is Status.FAILED
    assert cited(result, red005)[0].startswith(
        "sent POST https://provider.mock/api/app/provisioning/resources"
    )


def test_acc006_names_the_changed_email_when_accounts_are_keyed_by_email() -> None:
    result = run("accounts-keyed-by-email", steps=(Step.ACCOUNTS,))
    acc006 = finding(result, "PRV-ACC-006")
    assert acc006.status is Status.FAILED
    assert "with its email changed" in acc006.message
    assert "again" not in acc006.message  # the unchanged identity still reaches its account
