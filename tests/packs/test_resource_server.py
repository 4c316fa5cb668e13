"""The generic resource-server mode: green against the mock provider's protected resource,
and each departure from RFC 9728 / RFC 8414 / RFC 6750 in a small independent server fails
exactly the requirement it breaks."""

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
    metadata_url_for,
    resource_for_metadata_url,
)
from conformance.engine import RunPlan, run_sync
from conformance.registry import Role
from conformance.results import RunResult, Status
from mocks._serve import ServedInThread


def run(**config: Any) -> RunResult:
    plan = RunPlan(
        Role.RESOURCE_SERVER, "app-next", resource_server=ResourceServerTargetConfig(**config)
    )
    return run_sync(plan)


def failed(result: RunResult) -> set[str]:
    return {
        f.requirement.id for f in result.findings if f.status in (Status.FAILED, Status.WARNING)
    }


def test_the_mock_providers_protected_resource_passes() -> None:
    result = run()
    assert failed(result) == set()
    assert sum(f.status is Status.PASSED for f in result.findings) == 14


def test_a_trailing_slash_in_the_metadata_resource_is_named() -> None:
    assert failed(run(faults=("prm-resource-slash-differs",))) == {"RSV-DSC-003", "RSV-DSC-004"}


@contextmanager
def resource_server(**quirks: Any) -> Iterator[str]:
    """A small independent resource server (not our mock), correct unless a quirk says not."""
    listener = ServedInThread()
    origin = listener.origin
    resource = origin + "/mcp"
    issuer = origin + "/auth"

    async def protected(request: Request) -> Response:
        token = request.headers.get("authorization", "")
        params = [
            f'resource_metadata="{quirks.get("metadata_url", origin + "/.well-known/oauth-protected-resource/mcp")}"'
        ]
        if quirks.get("no_resource_metadata"):
            params = ['realm="mcp"']
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

    app = Starlette(
        routes=[
            Route("/mcp", protected),
            Route("/.well-known/oauth-protected-resource/mcp", prm),
            Route("/.well-known/oauth-authorization-server/auth", as_metadata),
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


def test_a_metadata_url_at_an_internal_address_is_never_fetched() -> None:
    with resource_server(metadata_url="http://169.254.169.254/latest/meta-data") as url:
        result = run(target=url)
    fetched = [e.url for e in result.recorder.exchanges]
    assert not any("169.254" in u for u in fetched)
    skipped = {f.requirement.id: f.message for f in result.findings if f.status is Status.SKIPPED}
    assert "will not fetch" in skipped["RSV-DSC-001"]


@pytest.mark.parametrize(
    ("resource", "metadata"),
    [
        ("https://rs.example/mcp", "https://rs.example/.well-known/oauth-protected-resource/mcp"),
        ("https://rs.example/", "https://rs.example/.well-known/oauth-protected-resource"),
        (
            "https://rs.example/a/?t=1",
            "https://rs.example/.well-known/oauth-protected-resource/a/?t=1",
        ),
    ],
)
def test_the_well_known_url_is_built_and_read_back_as_rfc_9728_section_3_1_says(
    resource: str, metadata: str
) -> None:
    assert metadata_url_for(resource) == metadata
    assert resource_for_metadata_url(metadata) in (resource, resource.rstrip("/"))


def test_a_metadata_url_not_of_the_well_known_form_names_no_resource() -> None:
    assert resource_for_metadata_url("https://rs.example/prm.json") is None
    assert (
        resource_for_metadata_url("https://rs.example/.well-known/oauth-protected-resourcex")
        is None
    )
