"""Preflight: every situation a first run against a real target gets wrong stops the run
with one message naming the root cause and what to change (exit 2 configuration, 3
environment), before a single check runs; issue 15's "Why" reproduced one by one."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from conformance.cli import main
from conformance.results import EXIT_ERROR, EXIT_USAGE
from mocks.hosting import ServedInThread
from mocks.provider.app import ProviderMock, ProviderSettings

SECRET = "whsec_provspec_preflight"


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def answering(status: int, body: Any, media: str = "application/json") -> Iterator[str]:
    """A server answering every request with one fixed answer (health too); its origin."""
    content = body if isinstance(body, str) else json.dumps(body)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await Response(content, status, media_type=media)(scope, receive, send)

    with ServedInThread().serving(app) as origin:
        yield origin


@contextmanager
def mock_provider(secret: str = SECRET) -> Iterator[str]:
    """The mock provider served on loopback, signing with `secret`; its base URL."""
    listener = ServedInThread()
    base = listener.origin + "/api/app/"
    mock = ProviderMock(ProviderSettings(base_url=base, hmac_secret=secret))
    with listener.serving(mock.app):
        yield base


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv, "--report-dir", str(tmp_path / "reports"), "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_message(out: str, err: str, tmp_path: Path) -> None:
    """Stopped before the checks: one error, no verdict lines, no reports."""
    assert err.count("provspec: error: preflight failed:") == 1
    assert "  to fix: " in err
    for mark in ("ERR ", "FAIL", "skip", "ok  "):
        assert mark not in out
    assert not (tmp_path / "reports" / "results.json").exists()


# --- provider --------------------------------------------------------------------------------


def test_a_wrong_hmac_secret_is_named_as_the_root_cause(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: 8 FAIL and 22 skips (or "suite crashed"), no hint to check the secret.
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", "whsec_not_the_providers")
    with mock_provider() as base:
        code, out, err = run(capsys, tmp_path, "--target", base)
    assert code == EXIT_USAGE
    one_message(out, err, tmp_path)
    assert "refused the suite's Stripe-Signature" in err
    assert "401 invalid_signature" in err
    assert "$PROVSPEC_HMAC_SECRET" in err


def test_the_right_secret_passes_preflight(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", SECRET)
    with mock_provider() as base:
        code, out, err = run(capsys, tmp_path, "--target", base, "--steps", "discovery")
    assert "preflight" not in err
    assert code == 0, out + err


@pytest.mark.parametrize(
    ("path", "status", "body", "media", "said"),
    [
        ("/wrong/", 404, "<html><body>Not Found</body></html>", "text/html", "404 with an HTML"),
        ("/wrong/", 404, {"detail": "Not Found"}, "application/json", "answered 404"),
        ("/", 200, "<!doctype html><title>Welcome</title>", "text/html", "200 with an HTML page"),
        ("/api/", 501, "Not Implemented", "text/plain", "501 with a text/plain body"),
    ],
    ids=["html-404", "json-404", "html-200", "text-501"],
)
def test_a_base_url_that_is_not_the_protocol_is_a_configuration_error(
    path: str,
    status: int,
    body: Any,
    media: str,
    said: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: 30-50 lines of failures and a target serving HTML passing PRV-ACC-010.
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", SECRET)
    with answering(status, body, media) as origin:
        code, out, err = run(capsys, tmp_path, "--target", origin + path)
    assert code == EXIT_USAGE
    one_message(out, err, tmp_path)
    assert said in err
    assert "--target must be" in err


def test_a_provider_speaking_the_other_profile_is_told_which(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", SECRET)
    health = {"supported_versions": ["next"], "status": "ok"}
    with answering(200, health) as origin:
        code, out, err = run(capsys, tmp_path, "--target", origin + "/api/")
    assert code == EXIT_USAGE
    one_message(out, err, tmp_path)
    assert "speaks app-next, not app-0.1d" in err
    assert "--profile app-next" in err


def test_an_app_next_provider_refusing_the_attestation_says_it_never_fetched_the_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    refusal = {"error": {"code": "invalid_signature", "message": "unknown issuer"}}
    with answering(401, refusal) as origin:
        code, out, err = run(
            capsys,
            tmp_path,
            "--profile",
            "app-next",
            "--target",
            origin + "/api/",
            "--orchestrator-port",
            "0",
        )
    assert code == EXIT_USAGE
    one_message(out, err, tmp_path)
    assert "refused the suite's attestation" in err
    assert "never fetched the suite's metadata or JWKS" in err
    assert "provspec keys --profile app-next" in err


@pytest.mark.parametrize(
    ("target", "said"),
    [
        (lambda: f"http://127.0.0.1:{unused_port()}/api/", "connection refused"),
        (lambda: "http://provider.invalid/api/", "cannot be resolved (DNS"),
    ],
    ids=["refused", "dns"],
)
def test_an_unreachable_provider_is_an_environment_error(
    target: Any,
    said: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: 52 bare ERR lines whose reason was only in results.json.
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", SECRET)
    code, out, err = run(capsys, tmp_path, "--target", target())
    assert code == EXIT_ERROR
    one_message(out, err, tmp_path)
    assert said in err


def test_a_tls_failure_is_an_environment_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", SECRET)
    with mock_provider() as base:
        code, out, err = run(capsys, tmp_path, "--target", base.replace("http://", "https://"))
    assert code == EXIT_ERROR
    one_message(out, err, tmp_path)
    assert "TLS handshake" in err
    assert "http://" in err


def test_an_unhealthy_provider_is_not_judged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", SECRET)
    with answering(503, {"error": {"code": "unavailable"}}) as origin:
        code, out, err = run(capsys, tmp_path, "--target", origin + "/api/")
    assert code == EXIT_ERROR
    one_message(out, err, tmp_path)
    assert "not ready to be judged" in err
    assert "503 unavailable" in err


# --- orchestrator -------------------------------------------------------------------------------


def orchestrator_config(tmp_path: Path) -> Path:
    config = tmp_path / "provspec.toml"
    config.write_text("[orchestrator]\nprovider_port = 0\nother_provider_port = 0\n")
    return config


def test_a_missing_orchestrator_cli_is_one_message_not_58_harness_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys,
        tmp_path,
        "--role",
        "orchestrator",
        "--orchestrator-cli",
        "no-such-orchestrator projects",
        "--config",
        str(orchestrator_config(tmp_path)),
    )
    assert code == EXIT_USAGE
    one_message(out, err, tmp_path)
    assert "no-such-orchestrator is not a program on PATH" in err


def test_an_orchestrator_cli_without_json_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys,
        tmp_path,
        "--role",
        "orchestrator",
        "--orchestrator-cli",
        "echo hello",
        "--config",
        str(orchestrator_config(tmp_path)),
    )
    assert code == EXIT_USAGE
    one_message(out, err, tmp_path)
    assert "printed no JSON envelope" in err


def test_an_orchestrator_without_the_suites_providers_is_told_to_register_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the orchestrator blamed, and ORC-DSC-012 and -016 passed with nothing to judge.
    monkeypatch.setenv("PROVSPEC_ORCHESTRATOR_STATE", str(tmp_path / "orchestrator.db"))
    assert main(["orchestrator", "init", "--accept-tos", "--json"]) == 0  # no providers
    capsys.readouterr()
    cli = f"{sys.executable} -m conformance orchestrator"
    code, out, err = run(
        capsys,
        tmp_path,
        "--role",
        "orchestrator",
        "--orchestrator-cli",
        cli,
        "--config",
        str(orchestrator_config(tmp_path)),
    )
    assert code == EXIT_USAGE
    one_message(out, err, tmp_path)
    assert "lists no service of provspecmock or provspecmock2" in err
    assert "register provspecmock at http://127.0.0.1:" in err


def test_a_signed_out_orchestrator_is_told_to_sign_in(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVSPEC_ORCHESTRATOR_STATE", str(tmp_path / "orchestrator.db"))
    assert main(["orchestrator", "init", "--accept-tos", "--json"]) == 0
    assert main(["orchestrator", "logout", "--json"]) == 0
    capsys.readouterr()
    code, out, err = run(
        capsys,
        tmp_path,
        "--role",
        "orchestrator",
        "--orchestrator-cli",
        f"{sys.executable} -m conformance orchestrator",
        "--config",
        str(orchestrator_config(tmp_path)),
    )
    assert code == EXIT_USAGE
    one_message(out, err, tmp_path)
    assert "JSON_REQUIRES_AUTH" in err
    assert "sign a test user in" in err


# --- resource server and agent ------------------------------------------------------------------


def test_an_unreachable_resource_server_no_longer_passes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Before: every requirement skipped, PASS, exit 0.
    target = f"http://127.0.0.1:{unused_port()}/mcp"
    code, out, err = run(capsys, tmp_path, "--role", "resource-server", "--target", target)
    assert code == EXIT_ERROR
    one_message(out, err, tmp_path)
    assert "connection refused" in err
    assert "PASS" not in out


def test_a_resource_url_serving_a_page_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with answering(200, "<html><body>Docs</body></html>", "text/html") as origin:
        code, out, err = run(
            capsys, tmp_path, "--role", "resource-server", "--target", origin + "/docs"
        )
    assert code == EXIT_USAGE
    one_message(out, err, tmp_path)
    assert "is not a protected resource" in err


def test_a_missing_agent_command_is_named_before_any_task(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, tmp_path, "--role", "agent", "--agent-cmd", "no-such-agent --go")
    assert code == EXIT_USAGE
    assert "does not name a program" in err
    assert not (tmp_path / "reports" / "results.json").exists()


def test_the_embedded_mocks_need_no_preflight() -> None:
    from conformance.adapters.provider import ProviderTargetConfig
    from conformance.engine import RunPlan, run_sync
    from spec.requirement import Role, Step

    # An embedded fault that breaks health is judged as PRV-DSC-001, not stopped at preflight.
    plan = RunPlan(
        Role.PROVIDER,
        "app-0.1d",
        ProviderTargetConfig(faults=("health-wrong-versions",)),
        steps=(Step.DISCOVERY,),
    )
    result = run_sync(plan)
    assert [f.requirement.id for f in result.failed()] == ["PRV-DSC-001"]


@pytest.mark.skipif(os.name != "posix", reason="a POSIX path for PATH lookups")
def test_preflight_messages_fit_on_a_screen(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", "whsec_wrong")
    with mock_provider() as base:
        _, _, err = run(capsys, tmp_path, "--target", base)
    assert len(err.strip().splitlines()) == 2  # the cause, then what to change
