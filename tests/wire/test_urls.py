"""The well-known URL rules (wire.urls), built the same way by the suite and the mocks."""

from __future__ import annotations

import pytest

from wire.urls import (
    as_metadata_url,
    orchestrator_metadata_url,
    prm_url,
    resource_for_metadata_url,
    well_known_url,
)


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
    assert prm_url(resource) == metadata
    assert resource_for_metadata_url(metadata) in (resource, resource.rstrip("/"))


def test_a_metadata_url_not_of_the_well_known_form_names_no_resource() -> None:
    assert resource_for_metadata_url("https://rs.example/prm.json") is None
    assert (
        resource_for_metadata_url("https://rs.example/.well-known/oauth-protected-resourcex")
        is None
    )


def test_the_authorization_server_and_orchestrator_metadata_urls() -> None:
    assert as_metadata_url("https://a.example/auth/") == (
        "https://a.example/.well-known/oauth-authorization-server/auth/"
    )
    assert as_metadata_url("https://a.example") == (
        "https://a.example/.well-known/oauth-authorization-server"
    )
    assert well_known_url("https://a.example/x", "openid-configuration") == (
        "https://a.example/.well-known/openid-configuration/x"
    )
    # OpenID Connect Discovery §4's rule: a terminating "/" of the issuer goes first
    for issuer in ("https://o.example/tenant", "https://o.example/tenant/"):
        assert orchestrator_metadata_url(issuer) == (
            "https://o.example/tenant/.well-known/app-orchestrator"
        )
