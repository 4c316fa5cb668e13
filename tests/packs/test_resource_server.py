"""The resource-server role's discovery: green against the embedded mock resource server under
every profile and against the mock provider's protected resource, and each departure from
RFC 9728 / RFC 8414 / RFC 6750 in a small independent server fails exactly the requirement it
breaks (the flow is in test_resource_server_flow.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance.adapters.resource_server import (
    ResourceServerTargetConfig,
)
from conformance.engine import RunPlan, run_sync
from conformance.results import RunResult, Status
from mocks.hosting import ServedInThread
from spec.registry import default_registry
from spec.requirement import Role

RS_PROFILES = ("rfc9728", "mcp-2025-06-18", "mcp-2025-11-25")


def run(profile: str = "rfc9728", **config: Any) -> RunResult:
    plan = RunPlan(
        Role.RESOURCE_SERVER, profile, resource_server=ResourceServerTargetConfig(**config)
    )
    return run_sync(plan)


def failed(result: RunResult) -> set[str]:
    return {
        f.requirement.id for f in result.findings if f.status in (Status.FAILED, Status.WARNING)
    }


@pytest.mark.parametrize("profile", RS_PROFILES)
def test_the_embedded_mock_passes_clean_under_every_profile(profile: str) -> None:
    result = run(profile=profile)
    wanted = default_registry().select(role=Role.RESOURCE_SERVER, profile=profile)
    assert result.profile == profile
    assert {f.requirement.id: f.status for f in result.findings} == {
        r.id: Status.PASSED for r in wanted
    }


@contextmanager
def mock_provider(*faults: str) -> Iterator[str]:
    """The APP mock provider (app-next), served: its base URL is a protected resource too."""
    from mocks.provider.app import ProviderMock, ProviderSettings

    listener = ServedInThread()
    provider = ProviderMock(
        ProviderSettings(profile="app-next", base_url=listener.origin + "/api/app/", faults=faults)
    )
    with listener.serving(provider.app):
        yield provider.base_url


def test_the_mock_providers_protected_resource_passes_discovery() -> None:
    with mock_provider() as url:
        result = run(target=url)
    assert failed(result) == set()
    assert {f.requirement.id for f in result.findings if f.status is Status.PASSED} >= {
        "RSV-CNS-001", "RSV-DSC-001", "RSV-DSC-003", "RSV-DSC-004", "RSV-DSC-008",
    }  # fmt: skip


def test_a_trailing_slash_in_the_metadata_resource_is_named() -> None:
    with mock_provider("prm-resource-slash-differs") as url:
        assert failed(run(target=url)) == {"RSV-DSC-003", "RSV-DSC-004"}


@contextmanager
def resource_server(**quirks: Any) -> Iterator[str]:
    """A small independent resource server (not our mock), correct unless a quirk says not."""
    listener = ServedInThread()
    origin = listener.origin
    resource = origin + "/mcp"
    issuer = origin + "/auth"

    async def protected(request: Request) -> Response:
        if request.method == "GET" and quirks.get("get_405"):
            return JSONResponse({}, 405)  # MCP: a server without an SSE stream for GET
        token = request.headers.get("authorization", "")
        params = [
            f'resource_metadata="{quirks.get("metadata_url", origin + "/.well-known/oauth-protected-resource/mcp")}"'
        ]
        if quirks.get("no_resource_metadata"):
            params = ['realm="mcp"']
        if quirks.get("scope"):
            params.append('scope="mcp:tools"')
        if token:
            params.append('error="invalid_token"')
        elif quirks.get("error_without_token"):
            params.append('error="invalid_request"')
        return JSONResponse({}, 401, headers={"WWW-Authenticate": "Bearer " + ", ".join(params)})

    async def prm(request: Request) -> Response:
        document: dict[str, Any] = {
            "resource": quirks.get("resource", resource),
            "authorization_servers": [issuer],
            "bearer_methods_supported": ["header"],
        }
        if quirks.get("empty_scopes"):
            document["scopes_supported"] = []
        return JSONResponse(document)

    async def as_metadata(request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": quirks.get("issuer", issuer),
                "authorization_endpoint": issuer + "/authorize",
                "token_endpoint": issuer + "/token",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": quirks.get("pkce", ["S256"]),
            }
        )

    prm_path = "/.well-known/oauth-protected-resource" + (
        "" if quirks.get("prm_at_root") else "/mcp"
    )
    as_path = (
        "/.well-known/openid-configuration/auth"
        if quirks.get("openid_only")
        else "/.well-known/oauth-authorization-server/auth"
    )
    app = Starlette(
        routes=[
            Route("/mcp", protected, methods=["GET", "POST"]),
            Route(prm_path, prm),
            Route(as_path, as_metadata),
        ]
    )
    with listener.serving(app):
        yield resource


@pytest.mark.parametrize(
    ("quirks", "expected"),
    [
        ({}, set()),
        ({"no_resource_metadata": True}, {"RSV-CNS-002"}),
        ({"error_without_token": True}, {"RSV-CNS-003"}),
        ({"empty_scopes": True}, {"RSV-DSC-005"}),
        ({"issuer": "http://127.0.0.1:1/auth/"}, {"RSV-DSC-008"}),
        ({"pkce": ["plain"]}, {"RSV-DSC-010"}),
    ],
    ids=["correct", "no-resource-metadata", "error-without-token", "empty-array", "issuer", "pkce"],
)
def test_an_independent_server_fails_exactly_what_it_breaks(
    quirks: dict[str, Any], expected: set[str]
) -> None:
    with resource_server(**quirks) as url:
        assert failed(run(target=url)) == expected


def test_the_probe_can_be_chosen() -> None:
    with resource_server(scope=True, get_405=True) as url:
        result = run("rfc9728", target=url, probe="mcp")
    assert verdicts(result) == (set(), set())
    # The preflight's GET comes first (reachable, not a 404 or a page; a 405 will do), then
    # the checks request the resource the way the probe says.
    preflight, first, *_ = (e for e in result.recorder.exchanges if e.url == url)
    assert preflight.method == "GET"
    assert first.method == "POST"
    assert '"method": "initialize"' in first.request_body


def verdicts(result: RunResult) -> tuple[set[str], set[str]]:
    """(failed, warned) requirement IDs."""
    return (
        {f.requirement.id for f in result.findings if f.status is Status.FAILED},
        {f.requirement.id for f in result.findings if f.status is Status.WARNING},
    )


# A quirk is judged by the rule of each profile: the MCP revisions differ on discovery.
# (The independent server offers no registration, so MCP 2025-06-18 always warns on
# RSV-DSC-015; without `scope` in its challenge MCP 2025-11-25 warns on RSV-CNS-020.)
@pytest.mark.parametrize(
    ("quirks", "profile", "expected"),
    [
        ({"scope": True}, "rfc9728", (set(), set())),
        ({"scope": True}, "mcp-2025-06-18", (set(), {"RSV-DSC-015"})),
        ({"scope": True}, "mcp-2025-11-25", (set(), set())),
        # no resource_metadata in the challenge: RFC SHOULD, 2025-06-18 MUST, 2025-11-25 fine
        ({"scope": True, "no_resource_metadata": True}, "rfc9728", (set(), {"RSV-CNS-002"})),
        ({"scope": True, "no_resource_metadata": True}, "mcp-2025-06-18", ({"RSV-CNS-002"}, {"RSV-DSC-015"})),
        ({"scope": True, "no_resource_metadata": True}, "mcp-2025-11-25", (set(), set())),
        # metadata at the root only, found through the challenge: fine everywhere but RFC 9728
        # §3.3's identity (the URL was built from the origin) outside MCP 2025-11-25
        ({"scope": True, "prm_at_root": True, "no_resource_metadata": True}, "rfc9728", ({"RSV-DSC-001"}, {"RSV-CNS-002"})),
        ({"scope": True, "prm_at_root": True, "no_resource_metadata": True}, "mcp-2025-11-25", (set(), set())),
        # authorization server metadata by OpenID Connect Discovery only: enough for 2025-11-25
        ({"scope": True, "openid_only": True}, "rfc9728", ({"RSV-DSC-008"}, set())),
        ({"scope": True, "openid_only": True}, "mcp-2025-11-25", (set(), set())),
        # S256 not advertised: a SHOULD by the RFCs, a MUST for 2025-11-25 (clients refuse)
        ({"scope": True, "pkce": ["plain"]}, "rfc9728", (set(), {"RSV-DSC-010"})),
        ({"scope": True, "pkce": ["plain"]}, "mcp-2025-11-25", ({"RSV-DSC-013"}, set())),
        ({}, "mcp-2025-11-25", (set(), {"RSV-CNS-020"})),
        # GET answered 405 before authentication, as an MCP server without SSE may: an MCP
        # client POSTs initialize, and so does the suite under the MCP profiles
        ({"scope": True, "get_405": True}, "mcp-2025-11-25", (set(), set())),
        ({"scope": True, "get_405": True}, "rfc9728", ({"RSV-CNS-001"}, {"RSV-CNS-004"})),
    ],
)  # fmt: skip
def test_an_independent_server_is_judged_by_each_profiles_rule(
    quirks: dict[str, Any], profile: str, expected: tuple[set[str], set[str]]
) -> None:
    with resource_server(**quirks) as url:
        assert verdicts(run(profile, target=url)) == expected


def test_a_metadata_url_at_an_internal_address_is_never_fetched() -> None:
    with resource_server(metadata_url="http://169.254.169.254/latest/meta-data") as url:
        result = run(target=url)
    fetched = [e.url for e in result.recorder.exchanges]
    assert not any("169.254" in u for u in fetched)
    skipped = {f.requirement.id: f.message for f in result.findings if f.status is Status.SKIPPED}
    assert "will not fetch" in skipped["RSV-DSC-001"]
