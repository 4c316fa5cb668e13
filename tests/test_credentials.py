"""Credential probes: parsed with every problem named, filled in without touching JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main
from conformance.config import load_config
from conformance.credentials import CredentialProbe, parse_probes


def test_a_probe_fills_member_placeholders_and_leaves_json_braces() -> None:
    (probe,), problems = parse_probes(
        [
            {
                "credential": "api_key",
                "method": "post",
                "url": "{host}/flags/?v=2",
                "headers": {"Content-Type": "application/json"},
                "body": '{"token": "{api_key}", "distinct_id": "x"}',
            }
        ],
        "p",
    )
    assert not problems
    request = probe.render({"api_key": "phc_1", "host": "https://h"}, {"provider_base_url": "b"})
    assert (request.method, request.url) == ("POST", "https://h/flags/?v=2")
    assert request.body == b'{"token": "phc_1", "distinct_id": "x"}'
    assert probe.judge == ("works", "rotation", "removal")


def test_a_probe_applies_only_to_credentials_that_carry_what_it_uses() -> None:
    probe = CredentialProbe(credential="api_key", url="{host}/x?b={provider_base_url}")
    assert probe.applies_to({"api_key": "k", "host": "h"})
    assert not probe.applies_to({"api_key": "k"})
    assert not probe.applies_to({"api_key": 1, "host": "h"})


def test_a_status_works_is_refused_or_says_nothing() -> None:
    probe = CredentialProbe(credential="k", url="https://x", works=(200,), refused=(401,))
    assert [probe.verdict(status) for status in (200, 401, 500)] == [True, False, None]


def test_every_problem_of_every_probe_is_named() -> None:
    _, problems = parse_probes(
        [
            {"credential": "", "url": "ftp://x", "method": "BREW", "works": [200], "x": 1},
            {"credential": "k", "url": "https://x", "works": [200], "refused": [200]},
            {"credential": "k", "url": "https://x", "judge": ["everything"]},
            "not a table",
        ],
        "provider.credential_probe",
    )
    text = "\n".join(problems)
    assert "[0]: unknown keys ['x']" in text
    assert "[0]: credential must name" in text
    assert "[0]: url must be an http(s) URL template" in text
    assert "[0]: method must be one of" in text
    assert "[1]: a status cannot both work and be refused" in text
    assert "[2]: judge must be a non-empty list" in text
    assert "[3] must be a table" in text


def test_the_config_refuses_a_bad_probe_and_identity_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "provspec.toml"
    config.write_text(
        "[provider]\nscopes = 'all'\noversized_body_bytes = 0\n"
        "[provider.orchestrator]\naccount = 'acct 1'\ncolour = 'blue'\n"
        "[[provider.credential_probe]]\ncredential = 'api_key'\n"
    )
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "provider.scopes must be a list of non-empty strings" in err
    assert "oversized_body_bytes must be a whole number" in err
    assert "unknown keys in [provider.orchestrator]: ['colour']" in err
    assert "orchestrator account 'acct 1' is not a short identifier" in err
    assert "provider.credential_probe[0]: url must be" in err


def test_the_worked_example_config_loads() -> None:
    example = Path(__file__).resolve().parent.parent / "docs" / "examples" / "posthog"
    config = load_config(example / "provspec.toml")
    probes, problems = parse_probes(config.get("provider", "credential_probe"), "p")
    assert not problems
    assert [probe.credential for probe in probes] == ["api_key", "personal_api_key"]
