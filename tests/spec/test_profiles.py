"""Profiles as data (spec/profiles.py, spec/schemas.py): parameters, drafts
loaded from a directory, requirement changes, and the mocks and checks following them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.selftest import run_selftest
from mocks.sandbox import Sandbox
from spec.drafts.consistency import consistency
from spec.registry import default_registry
from spec.requirement import Level, Role
from spec.schemas import default_store
from wire.errors import ProvspecError, UsageError

STORE = default_store()


def draft(tmp_path: Path, name: str, body: str, base: str = "app-next") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    manifest = f'name = "{name}"\nbase = "{base}"\napi_version = "next"\n' + body
    (directory / "profile.toml").write_text(manifest)
    return directory


def test_the_built_in_parameters_are_data() -> None:
    old, new = STORE.profile("app-0.1d").params, STORE.profile("app-next").params
    assert (old.version_header, old.signature_header, old.hmac_tolerance) == (
        "API-Version",
        "Stripe-Signature",
        300,
    )
    assert (new.attestation_header, new.attestation_lifetime, new.payment_token_lifetime) == (
        "APP-Attestation",
        300,
        900,
    )
    assert new.algorithms == ("EdDSA", "ES256")
    assert (new.default_cap.limit, new.default_cap.currency, new.default_cap.interval) == (
        10000,
        "usd",
        "month",
    )
    assert new.error("spend_cap_exceeded").status == 402
    assert "spend_cap_exceeded" not in old.error_codes
    assert (old.api_version, new.api_version) == ("0.1d", "next")


def test_a_draft_loads_from_its_directory_and_inherits(tmp_path: Path) -> None:
    path = draft(tmp_path, "hdr", '[parameters]\nattestation_header = "X-Att"\n')
    spec = STORE.profile(str(path))
    assert (spec.name, spec.family, spec.builtin, spec.base) == (
        "hdr",
        "app-next",
        False,
        "app-next",
    )
    assert spec.params.attestation_header == "X-Att"
    assert spec.params.default_cap.limit == 10000  # inherited
    assert STORE.messages("hdr") == STORE.messages("app-next")
    assert STORE.profile(str(path)) is spec  # loaded once
    assert "hdr" not in STORE.profiles()  # drafts are not built-ins


def test_a_draft_can_be_based_on_another_draft(tmp_path: Path) -> None:
    draft(tmp_path, "lower", "[parameters.default_cap]\nlimit = 20000\n")
    upper = draft(tmp_path, "upper", "[parameters]\nhmac_tolerance = 60\n", base="../lower")
    spec = STORE.profile(str(upper))
    assert STORE.lineage("upper") == ["upper", "lower", "app-next", "app-0.1d"]
    assert (spec.params.default_cap.limit, spec.params.hmac_tolerance) == (20000, 60)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[parameters]\nattestation_header = "Bad Header"\n',
            r"profile\.toml:5: attestation_header",
        ),
        ('[parameters]\nalgorithms = ["HS256"]\n', r"profile\.toml:5: algorithms"),
        ('[parameters.default_cap]\ncurrency = "USD"\n', r"profile\.toml:5: default_cap\.currency"),
        ("[parameters]\ncolour = 1\n", r"profile\.toml:5: unknown parameter 'colour'"),
        ('[requirements]\nlevel = { "PRV-ATT-007" = "OFTEN" }\n', r"level of PRV-ATT-007"),
        ("flavour = 1\n", r"profile\.toml:4: unknown manifest keys"),
    ],
)
def test_a_bad_manifest_names_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    path = draft(tmp_path, "bad", body)
    with pytest.raises(ProvspecError, match=message):
        STORE.profile(str(path))


def test_a_draft_needs_its_own_name_and_a_known_base(tmp_path: Path) -> None:
    with pytest.raises(ProvspecError, match="already loaded"):
        STORE.profile(str(draft(tmp_path, "app-next", "")))
    with pytest.raises(ProvspecError, match=r"profile\.toml:2: unknown base profile 'app-nxt'"):
        STORE.profile(str(draft(tmp_path, "orphan", "", base="app-nxt")))
    with pytest.raises(
        UsageError,
        match=r"neither a known profile \(app-0\.1d, app-next, .*\) nor a profile directory",
    ):
        STORE.profile(str(tmp_path / "nowhere"))


def test_requirement_changes_shape_the_requirement_set(tmp_path: Path) -> None:
    path = draft(
        tmp_path,
        "reqs",
        '[requirements]\ndrop = ["PRV-ATT-007"]\nlevel = { "PRV-ATT-008" = "SHOULD" }\n'
        "[[requirements.add]]\n"
        'id = "PRV-ATT-901"\nlevel = "MUST"\nrole = "provider"\nstep = "attestation"\n'
        'text = "The provider rejects an attestation without a tenant claim with 401."\n'
        'source = "project decision: test"\n',
    )
    name = STORE.profile(str(path)).name
    selected = {r.id: r for r in default_registry().select(role=Role.PROVIDER, profile=name)}
    assert "PRV-ATT-007" not in selected
    assert selected["PRV-ATT-008"].level is Level.SHOULD
    assert default_registry()["PRV-ATT-008"].level is Level.MUST  # the registry is untouched
    assert selected["PRV-ATT-901"].applies_to(name)
    assert consistency(name) == []


def test_consistency_finds_what_the_mocks_cannot_satisfy(tmp_path: Path) -> None:
    path = draft(
        tmp_path,
        "broken",
        "[parameters.error_codes]\n"
        'spend_cap_exceeded = { code = "cap_hit", status = 409, envelope = "spend_cap_exceeded" }\n'
        'teapot = { code = "teapot", status = 418, envelope = "no_such_message" }\n'
        '[requirements]\ndrop = ["PRV-XXX-999"]\n',
    )
    (path / "attestation_claims.schema.json").write_text(
        (Path(__file__).parents[2] / "schemas/app-next/attestation_claims.schema.json")
        .read_text()
        .replace("schemas/app-next/", "schemas/broken/")
        .replace('"required": [', '"required": ["tenant", ', 1)
    )
    problems = "\n".join(consistency(STORE.profile(str(path)).name))
    assert "teapot = 'teapot' has no envelope" in problems
    assert "pins status to [402]" in problems
    assert "'tenant' is a required property" in problems
    assert "PRV-XXX-999 is not in the base's requirement set" in problems
    with pytest.raises(ProvspecError, match="cannot be satisfied"):
        run_selftest(profiles=("broken",), roles=(Role.PROVIDER,))


def test_the_mocks_get_the_profile_object(tmp_path: Path) -> None:
    path = draft(
        tmp_path,
        "mocked",
        '[parameters]\nattestation_header = "X-Att"\n[parameters.default_cap]\nlimit = 20000\n',
    )
    sandbox = Sandbox(profile=str(path))
    assert sandbox.provider.settings.spec is sandbox.spec
    assert sandbox.provider.params.attestation_header == "X-Att"
    assert sandbox.orchestrator_mock.ledger.state("usr_1", "p").limit == 20000


def test_a_copied_profile_with_another_header_and_cap_drives_mocks_and_checks(
    tmp_path: Path,
) -> None:
    """Done-when of issue 8: the mocks and checks follow a copied profile's parameters."""
    path = draft(
        tmp_path,
        "copied",
        '[parameters]\nattestation_header = "X-Draft-Attestation"\n'
        "[parameters.default_cap]\nlimit = 20000\n",
    )
    result = run_selftest(
        profiles=(str(path),),
        roles=(Role.PROVIDER, Role.ORCHESTRATOR),
        only=("accept-wrong-aud", "cap-default-limit-wrong", "attestation-long-lived"),
    )
    assert all(not failed for failed in result.references.values()), result.references
    caught = {row.fault.name: row.status for row in result.rows}
    assert caught == {
        "accept-wrong-aud": "exact",
        "cap-default-limit-wrong": "exact",
        "attestation-long-lived": "exact",
    }


def test_a_renamed_attestation_header_is_masked_in_the_evidence(tmp_path: Path) -> None:
    from conformance.adapters.provider import ProviderTargetConfig
    from conformance.engine import RunPlan, run_sync

    path = draft(tmp_path, "renamed", '[parameters]\nattestation_header = "X-Draft-Att"\n')
    provider = ProviderTargetConfig(profile=str(path))
    result = run_sync(RunPlan(Role.PROVIDER, str(path), provider))
    assert not result.failed()
    assert not result.errors()
    shown = [
        exchange.request_headers["x-draft-att"]
        for exchange in result.recorder.exchanges
        if "x-draft-att" in exchange.request_headers
    ]
    assert shown, "the run sent no attestation under the draft's header name"
    # decoded for the reader, signature masked: never the compact JWS itself
    for value in shown:
        assert value.startswith(("header ", "«masked", "«empty")) or not value, value
