"""What selftest cannot show about the catalog, provisioning and custody checks: their
judges on inputs no mock produces (the real Stripe catalog, a noisy CLI, files that already
exist), and the mock CLI's own behaviour where a check only sees one side of it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from conformance.adapters.orchestrator import envelope_of
from conformance.cli import main
from conformance.packs.orchestrator._probes import status_of, suspicious
from conformance.packs.orchestrator.cli import price_and_schema_differences
from mocks.provider.catalog import SERVICES

REAL_CATALOG = Path(__file__).resolve().parents[3] / "shared" / "real"


@pytest.mark.parametrize(
    ("identifier", "reason"),
    [
        ("registrar:domain", ""),
        ("workers:paid", ""),
        ("Laravel_Cloud", ""),
        ("r2:bucket", ""),
        ("free ", "trailing"),
        ("fr\u200bee", "invisible"),
        ("\u202eeerf", "invisible"),
        ("fr\u0435e", "lookalike"),
        ("provspecmoc\u212a", "NFKC"),
        ("\uff46\uff52\uff45\uff45", "NFKC"),
    ],
)
def test_suspicious_ids_are_named_and_real_ones_are_not(identifier: str, reason: str) -> None:
    found = suspicious(identifier)
    assert (reason in found) if reason else found == ""


def test_no_id_of_the_real_stripe_catalog_looks_suspicious() -> None:
    captures = sorted(REAL_CATALOG.glob("stripe-projects-catalog-*.json"))
    if not captures:
        pytest.skip("the real Stripe Projects catalog is not present in ../shared/real/")
    services = json.loads(captures[-1].read_text())["data"]["services"]
    flagged = {
        s["service_id"]: suspicious(s["service_id"]) or suspicious(s["provider_name"])
        for s in services
        if suspicious(s["service_id"]) or suspicious(s["provider_name"])
    }
    assert len(services) > 100
    assert flagged == {}


def test_a_noisy_cli_still_yields_its_envelope_for_the_other_checks() -> None:
    envelope = {"ok": True, "command": "projects add", "data": {"status": "provisioned"}}
    noisy = "Provisioning provspecmock/free...\n" + json.dumps(envelope, indent=2) + "\n"
    assert envelope_of(noisy) == envelope
    assert envelope_of("no json at all\n") == {}
    assert envelope_of('{"ok": true, "ok": false}') == {}  # duplicates are never guessed at


def test_observed_stripe_codes_count_as_the_documented_statuses() -> None:
    refused = {"ok": False, "error": {"code": "JSON_REQUIRES_CONFIRMATION", "message": "…"}}
    assert status_of(refused) == "confirmation_required"
    assert status_of({"ok": True, "data": {"status": "pending"}}) == "pending"


def _aggregated(service_id: str) -> dict[str, Any]:
    from mocks.orchestrator.catalog import service_detail

    served = next(s for s in SERVICES if s.id == service_id).as_json()
    return service_detail("provspecmock", served)


@pytest.mark.parametrize("service_id", [s.id for s in SERVICES])
def test_reshaping_as_stripe_does_is_not_a_price_or_schema_difference(service_id: str) -> None:
    served = next(s for s in SERVICES if s.id == service_id).as_json()
    assert price_and_schema_differences(served, _aggregated(service_id)) == []


@pytest.mark.parametrize(
    ("service_id", "change", "named"),
    [
        ("pro", lambda p: p["paid"].update(freeform="$5/month"), "paid"),
        ("kv", lambda p: p["component"]["options"][1]["paid"].update(freeform="free"), "component"),
        ("kv", lambda p: p["component"]["options"][0].update(parent_services=["pro"]), "component"),
    ],
)
def test_a_changed_price_is_a_difference(service_id: str, change: Any, named: str) -> None:
    served = next(s for s in SERVICES if s.id == service_id).as_json()
    entry = _aggregated(service_id)
    change(entry["pricing"])
    assert any(named in found for found in price_and_schema_differences(served, entry))


def test_a_dropped_configuration_schema_is_a_difference() -> None:
    served = next(s for s in SERVICES if s.id == "kv").as_json()
    entry = {**_aggregated("kv"), "configuration_schema": {}}
    assert price_and_schema_differences(served, entry) == ["configuration_schema"]


def _cli(state: Path, *arguments: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["orchestrator", *arguments, "--json", "--state", str(state)])
    return code, json.loads(out.getvalue())


def test_a_signed_out_cli_refuses_everything_but_init(tmp_path: Path) -> None:
    state = tmp_path / "orchestrator.db"
    assert _cli(state, "init")[0] == 0
    assert _cli(state, "logout")[1]["meta"]["authenticated"] is False
    for command in (["catalog"], ["status"], ["env"], ["add", "provspecmock/free"]):
        code, envelope = _cli(state, *command)
        assert (code, envelope["error"]["code"]) == (1, "JSON_REQUIRES_AUTH")
    assert _cli(state, "init")[0] == 0
    assert _cli(state, "status")[0] == 0


def test_env_pull_makes_an_existing_env_file_private(tmp_path: Path) -> None:
    from mocks.orchestrator.custody import write_env_file

    class Holder:
        class faults:
            @staticmethod
            def active(name: str) -> bool:
                return False

        @staticmethod
        def resources() -> list[dict[str, Any]]:
            return [{"name": "db-1", "credentials": {"url": "postgres://s3cret"}}]

    existing = tmp_path / ".env"
    existing.write_text("OLD=1\n")
    os.chmod(existing, 0o644)
    path = write_env_file(Holder(), tmp_path)  # type: ignore[arg-type]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "DB_1_URL=postgres://s3cret\n"
