"""The authorization code flow of the resource-server role: consent by command, the gates that
keep it from production, the premises that keep a refusal from reading as a pass, the
fallbacks a real authorization server needs, secrets kept out of evidence, and the CLI."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.adapters.resource_server import (
    ResourceServerTarget,
    ResourceServerTargetConfig,
    mask_secret_params,
)
from conformance.cli import main
from conformance.config import load_config
from conformance.engine import RunPlan, run_sync
from conformance.results import RunResult, Status
from mocks.hosting import ServedInThread
from mocks.resource_server import ResourceServerMock, ResourceServerSettings
from spec.registry import default_registry
from spec.requirement import Level, Role
from wire.errors import UsageError

RS_PROFILES = ("rfc9728", "mcp-2025-06-18", "mcp-2025-11-25")
SECRET = re.compile(r"\brs(?:a|at|rt|s)_[A-Za-z0-9_\-]{20,}")
"""What the mock's codes, access and refresh tokens and client secrets look like."""


def run(profile: str = "rfc9728", **config: Any) -> RunResult:
    plan = RunPlan(
        Role.RESOURCE_SERVER, profile, resource_server=ResourceServerTargetConfig(**config)
    )
    return run_sync(plan)


def statuses(result: RunResult) -> dict[str, Status]:
    return {f.requirement.id: f.status for f in result.findings}


def messages(result: RunResult) -> dict[str, str]:
    return {f.requirement.id: f.message for f in result.findings}


FLOW = {
    "RSV-CNS-006", "RSV-CNS-007", "RSV-CNS-008", "RSV-CNS-009", "RSV-CNS-010", "RSV-CNS-011",
    "RSV-CNS-012", "RSV-CNS-013", "RSV-CNS-014", "RSV-CNS-015", "RSV-CNS-016", "RSV-CNS-021",
    "RSV-REV-001", "RSV-REV-002", "RSV-REV-003",
}  # fmt: skip


@contextmanager
def served_mock(wrap: Any = None, **settings: Any) -> Iterator[str]:
    """The mock resource server on a loopback socket, optionally behind `wrap(app)` (an
    independent variation of one endpoint)."""
    listener = ServedInThread()
    mock = ResourceServerMock(ResourceServerSettings(origin=listener.origin, **settings))
    with listener.serving(wrap(mock.app) if wrap else mock.app):
        yield mock.resource_url


def intercept(path_suffix: str, answer: Any) -> Any:
    """An ASGI wrapper that answers requests whose path ends in `path_suffix` itself."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].endswith(path_suffix):
                request = Request(scope, receive)
                body = await request.body()
                response = await answer(request, app)
                if response is not None:
                    await response(scope, receive, send)
                    return

                async def replay() -> Message:  # the body was read: hand it on once more
                    return {"type": "http.request", "body": body, "more_body": False}

                receive = replay
            await app(scope, receive, send)

        return wrapped

    return wrap


# --- consent by command -------------------------------------------------------------------

APPROVE = """\
import sys, urllib.request, urllib.error

class Stop(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

opener = urllib.request.build_opener(Stop)
try:
    opener.open(sys.argv[1], timeout=5)
except urllib.error.HTTPError as answer:
    if answer.code in (301, 302, 303, 307):
        print("approved; the browser went to:")
        print(answer.headers["Location"])
        sys.exit(0)
sys.exit(1)
"""


def test_consent_by_command_runs_the_whole_flow(tmp_path: Path) -> None:
    script = tmp_path / "approve.py"
    script.write_text(APPROVE)
    result = run(consent="command", consent_command=f"{sys.executable} {script}")
    assert set(statuses(result).values()) == {Status.PASSED}
    calls = result.recorder.cli_calls
    assert calls
    assert all(call.exit_code in (0, 1) for call in calls)
    approved = [call for call in calls if call.exit_code == 0]
    assert approved
    assert "code=«masked" in approved[0].stdout


def test_a_consent_command_that_prints_nothing_skips_the_flow_and_says_why(
    tmp_path: Path,
) -> None:
    result = run(consent="command", consent_command=f"{sys.executable} -c pass")
    assert {rid for rid, s in statuses(result).items() if s is Status.SKIPPED} >= FLOW
    assert "consent_command printed no URL" in messages(result)["RSV-CNS-008"]
    assert not result.failed()


# --- gates and premises --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "refused"),
    [
        ({"target": "https://mcp.realvendor.com/mcp"}, True),
        ({"target": "https://mcp.realvendor.com/mcp", "flows": True}, False),
        ({"target": "https://mcp.realvendor.com/mcp", "client_id": "c1"}, False),
        ({"target": "https://mcp.staging.realvendor.com/mcp"}, False),
        ({"target": "http://127.0.0.1:9/mcp"}, False),
        ({"target": "http://127.0.0.1:9/mcp", "flows": False}, True),
        ({}, False),
    ],
)
def test_the_flow_runs_only_where_it_is_harmless_or_asked_for(
    config: dict[str, Any], refused: bool
) -> None:
    target = ResourceServerTarget(ResourceServerTargetConfig(**config))
    assert bool(target.flows_refused()) is refused


def test_a_resource_that_refuses_every_token_fails_one_rule_and_passes_no_refusal_probe() -> None:
    result = run("mcp-2025-11-25", faults=("rs-refuses-valid-token",))
    found = statuses(result)
    assert {rid for rid, s in found.items() if s is Status.FAILED} == {"RSV-CNS-008"}
    for probe in ("RSV-CNS-009", "RSV-CNS-016", "RSV-CNS-017", "RSV-REV-002"):
        assert found[probe] is Status.SKIPPED, probe
        assert "see RSV-CNS-008" in messages(result)[probe]


async def _html_consent_page(request: Request, app: ASGIApp) -> HTMLResponse:
    return HTMLResponse("<form>Sign in to approve</form>")


def test_a_consent_that_needs_a_human_skips_the_flow_with_the_reason() -> None:
    with served_mock(intercept("/authorize", _html_consent_page)) as url:
        result = run(target=url)
    found = statuses(result)
    assert not result.failed()
    assert found["RSV-CNS-005"] is Status.PASSED  # registration needs no consent
    assert {rid for rid, s in found.items() if s is Status.SKIPPED} >= FLOW - {"RSV-CNS-015"}
    assert 'consent = \\"command\\"' in json.dumps(messages(result)["RSV-CNS-008"])


async def _no_public_clients(request: Request, app: ASGIApp) -> JSONResponse | None:
    body = await request.body()
    if b'"none"' in body:
        return JSONResponse(
            {"error": "invalid_client_metadata", "error_description": "no public clients"}, 400
        )
    return None


def test_an_authorization_server_without_public_clients_is_judged_with_a_confidential_one() -> None:
    with served_mock(intercept("/register", _no_public_clients)) as url:
        result = run(target=url)
    found = statuses(result)
    assert not result.failed(), [(f.requirement.id, f.message) for f in result.failed()]
    assert found["RSV-CNS-005"] is Status.PASSED  # a refusal with an RFC 7591 error is fine
    assert found["RSV-CNS-008"] is Status.PASSED
    # rules for public clients do not apply to the confidential one
    assert found["RSV-CNS-011"] is Status.NOT_APPLICABLE
    assert found["RSV-CNS-014"] is Status.NOT_APPLICABLE


async def _metadata_without_revocation_methods(request: Request, app: ASGIApp) -> JSONResponse:
    """The mock's AS metadata, minus revocation_endpoint_auth_methods_supported."""
    origin = f"{request.url.scheme}://{request.url.netloc}"
    mock = ResourceServerMock(ResourceServerSettings(origin=origin))
    document = json.loads(bytes((await mock._as_metadata(request)).body))
    del document["revocation_endpoint_auth_methods_supported"]
    return JSONResponse(document)


async def _revocation_for_confidential_clients(
    request: Request, app: ASGIApp
) -> JSONResponse | None:
    if request.headers.get("authorization", "").startswith("Basic "):
        return None
    return JSONResponse({"error": "invalid_client"}, 401, {"WWW-Authenticate": "Basic"})


def test_revocation_falls_back_to_a_confidential_client_where_the_methods_are_unsaid() -> None:
    """RFC 8414 §2: without revocation_endpoint_auth_methods_supported the method is
    client_secret_basic, so turning a public client away is no failure."""

    def wrap(app: ASGIApp) -> ASGIApp:
        inner: ASGIApp = intercept("/revoke", _revocation_for_confidential_clients)(app)
        outer: ASGIApp = intercept(
            "/oauth-authorization-server/as", _metadata_without_revocation_methods
        )(inner)
        return outer

    with served_mock(wrap) as url:
        result = run(target=url)
    found = statuses(result)
    assert {found[rid] for rid in ("RSV-REV-001", "RSV-REV-002", "RSV-REV-003")} == {Status.PASSED}
    refused = [
        e for e in result.recorder.exchanges if e.url.endswith("/revoke") and e.status == 401
    ]
    assert refused  # the public client was turned away first


# --- evidence ------------------------------------------------------------------------------


def test_no_code_token_or_secret_reaches_the_evidence() -> None:
    result = run("mcp-2025-11-25")
    recorded = [item.describe() for item in result.recorder.exchanges]
    recorded += [item.describe() for item in result.recorder.cli_calls]
    text = "\n".join(recorded)
    assert "code=«masked" in text  # the authorization responses were recorded, masked
    assert SECRET.findall(text) == []


def test_masking_a_url_keeps_what_is_not_secret() -> None:
    url = (
        "http://127.0.0.1:8976/cb?code=rsa_abcdefghijklmnopqrstuvwxyz&state=s1&iss=https%3A%2F%2Fa"
    )
    masked = mask_secret_params(url)
    assert "rsa_abcdefghij" not in masked
    assert masked.endswith("&state=s1&iss=https%3A%2F%2Fa")


# --- configuration and CLI -----------------------------------------------------------------


def test_the_config_section_is_read_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance._cli_resource_server import resource_server_config

    good = tmp_path / "good.toml"
    good.write_text(
        '[resource_server]\ntarget = "https://mcp.test/mcp"\nclient_id = "c1"\n'
        'client_secret_env = "RS_SECRET"\nconsent = "command"\nconsent_command = "approve"\n'
        'scope = "a b"\nflows = true\nprobe = "get"\n'
    )
    monkeypatch.setenv("RS_SECRET", "s3cret-value")
    config = resource_server_config(load_config(good), "mcp-2025-06-18", "https://mcp.test/mcp", ())
    assert (config.client_id, config.client_secret, config.consent, config.scope) == (
        "c1",
        "s3cret-value",
        "command",
        "a b",
    )
    assert config.profile == "mcp-2025-06-18"
    assert config.flows is True
    assert config.probe == "get"
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[resource_server]\nconsent = "browser"\nflows = "yes"\nclient_secret = "x"\n'
        'probe = "head"\n'
    )
    with pytest.raises(UsageError) as refused:
        load_config(bad)
    for expected in (
        "consent must be one of",
        "flows must be true or false",
        "client_secret_env",
        "probe must be one of",
    ):
        assert expected in str(refused.value)


@pytest.mark.parametrize("profile", RS_PROFILES)
def test_requirements_lists_each_profiles_set_with_its_levels(
    profile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            ["requirements", "--role", "resource-server", "--profile", profile, "--format", "json"]
        )
        == 0
    )
    listed = {entry["id"]: entry for entry in json.loads(capsys.readouterr().out)["requirements"]}
    assert set(listed) == {
        r.id for r in default_registry().select(role=Role.RESOURCE_SERVER, profile=profile)
    }
    assert all(re.search(r"https://\S+#\S+", entry["source"]) for entry in listed.values())
    raised = {"RSV-CNS-009": "MUST", "RSV-CNS-011": "MUST"} if profile != "rfc9728" else {}
    for rid, level in {"RSV-CNS-009": "SHOULD", "RSV-CNS-011": "SHOULD", **raised}.items():
        assert listed[rid]["level"] == level
    assert ("RSV-CNS-002" in listed) is (profile != "mcp-2025-11-25")
    if profile == "mcp-2025-06-18":
        assert listed["RSV-CNS-002"]["level"] == "MUST"


def test_every_profile_has_requirements_of_its_own() -> None:
    registry = default_registry()
    sets = {
        p: {r.id for r in registry.select(role=Role.RESOURCE_SERVER, profile=p)}
        for p in RS_PROFILES
    }
    assert sets["mcp-2025-06-18"] - sets["rfc9728"] == {"RSV-CNS-017", "RSV-CNS-019", "RSV-DSC-011", "RSV-DSC-015"}  # fmt: skip
    assert sets["mcp-2025-11-25"] - sets["rfc9728"] == {
        "RSV-CNS-017", "RSV-CNS-018", "RSV-CNS-019", "RSV-CNS-020", "RSV-DSC-011",
        "RSV-DSC-012", "RSV-DSC-013",
    }  # fmt: skip
    musts = [r for r in registry.select(role=Role.RESOURCE_SERVER) if r.level is Level.MUST]
    assert len(musts) >= 25


def test_run_names_the_profile_it_used_and_refuses_one_without_the_role(tmp_path: Path) -> None:
    assert main(["run", "--role", "resource-server", "--report-dir", str(tmp_path), "--quiet"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["profile"] == "rfc9728"
    assert main(["run", "--role", "resource-server", "--profile", "app-next", "--quiet"]) == 2
    assert main(["run", "--role", "provider", "--profile", "rfc9728", "--quiet"]) == 2


def test_selftest_proves_the_roles_faults(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["selftest", "--role", "resource-server", "--profile", "mcp-2025-11-25",
         "--fault", "insufficient-*", "--jobs", "1"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    # Progress lines say it as each run ends, the matrix at the end once per fault: judge the
    # matrix.
    matrix = [line for line in out.splitlines() if line.startswith("  resource-server ")]
    assert len(matrix) == 3
    assert all(line.endswith("caught exactly") for line in matrix)
    assert "detection rate 100% (3/3 fault runs caught)" in out
    assert "reference mock resource-server (mcp-2025-11-25): clean" in out
