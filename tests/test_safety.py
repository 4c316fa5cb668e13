"""The live-target interlock: no run against production or with live keys unless asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main
from conformance.safety import live_reasons, production_host
from wire.errors import UsageError


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8400/api/app/",
        "http://localhost:8400/",
        "http://[::1]:8400/",
        "https://10.1.2.3/api/",
        "https://provider.example/api/",
        "https://api.example.com/",
        "https://staging.posthog.com/api/partners/stripe/",
        "https://api-sandbox.provider.io/",
        "https://provider.test/",
        "https://dev.acme.io/",
        "https://provider.mock/api/app/",
    ],
)
def test_test_hosts_pass(url: str) -> None:
    assert production_host(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://us.posthog.com/api/partners/stripe/",
        "https://api.cloudflare.com/",
        "https://8.8.8.8/",
    ],
)
def test_production_hosts_are_named(url: str) -> None:
    assert production_host(url)


def test_live_keys_are_found_but_never_shown() -> None:
    reasons = live_reasons(
        [], {"the HMAC secret": "sk_live_51Habcdefghijkl"}, {"STRIPE_KEY": "rk_live_zzzzzzzz"}
    )
    assert len(reasons) == 2
    assert all("sk_live_51Habcdefghijkl" not in r and "rk_live_zzzzzzzz" not in r for r in reasons)
    assert not live_reasons([], {"secret": "sk_test_51Habcdefghijkl", "other": "whsec_x"})


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        (
            ["--target", "https://api.realprovider.com/app/", "--hmac-secret", "whsec_x"],
            "production host",
        ),
        (["--target", "http://127.0.0.1:9/api/", "--hmac-secret", "sk_live_abcdefgh"], "live key"),
    ],
)
def test_a_live_looking_run_is_refused_with_exit_2(
    arguments: list[str], why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", *arguments, "--report-dir", str(tmp_path), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("provspec: error: refusing to run")
    assert why in err
    assert "--i-know-this-is-live" in err
    assert "sk_live_abcdefgh" not in err
    assert not (tmp_path / "results.json").exists()


def test_the_flag_lets_a_live_looking_run_go(tmp_path: Path) -> None:
    # Nothing listens on port 9: the run goes ahead and ends in environment errors.
    code = main(
        [
            "run",
            "--target",
            "http://127.0.0.1:9/api/app/",
            "--hmac-secret",
            "sk_live_abcdefgh",
            "--steps",
            "discovery",
            "--i-know-this-is-live",
            "--report-dir",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == 3


def test_a_public_resource_server_is_not_refused() -> None:
    """Resource-server mode reads public metadata and probes without a token: it spends
    nothing, so it runs against production RFC 9728 servers without the flag."""
    import argparse

    from conformance._cli_ci import before_run
    from conformance.adapters.resource_server import ResourceServerTargetConfig
    from conformance.engine import RunPlan
    from spec.requirement import Role

    url = "https://mcp.realvendor.com/mcp"
    plan = RunPlan(
        Role.RESOURCE_SERVER, "rfc9728", resource_server=ResourceServerTargetConfig(target=url)
    )
    args = argparse.Namespace(target=url, rerun_failures=0, baseline=None)
    before_run(args, plan)  # no UsageError
    args.target = url + "?key=sk_live_abcdefgh"
    with pytest.raises(UsageError, match="live key"):
        before_run(args, plan)
