from __future__ import annotations

import pytest

from wire.www_authenticate import Challenge, ChallengeError, parse

PRM = "https://p.example/.well-known/oauth-protected-resource/api"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f'Bearer resource_metadata="{PRM}"', [Challenge("Bearer", {"resource_metadata": PRM})]),
        (
            f'Bearer scope="query:read project:read", resource_metadata="{PRM}"',
            [Challenge("Bearer", {"scope": "query:read project:read", "resource_metadata": PRM})],
        ),
        (
            f'bearer RESOURCE_METADATA = "{PRM}" , error=insufficient_scope',
            [Challenge("bearer", {"resource_metadata": PRM, "error": "insufficient_scope"})],
        ),
        (
            f'DPoP algs="ES256", Bearer resource_metadata="{PRM}", realm="x"',
            [
                Challenge("DPoP", {"algs": "ES256"}),
                Challenge("Bearer", {"resource_metadata": PRM, "realm": "x"}),
            ],
        ),
        ('Basic, Bearer realm="a"', [Challenge("Basic"), Challenge("Bearer", {"realm": "a"})]),
        (
            "Negotiate abc+/==, Bearer",
            [Challenge("Negotiate", token68="abc+/=="), Challenge("Bearer")],
        ),
        (
            'Bearer error_description="say \\"hi\\", ok"',
            [Challenge("Bearer", {"error_description": 'say "hi", ok'})],
        ),
        (", Bearer realm=a ,", [Challenge("Bearer", {"realm": "a"})]),
    ],
    ids=[
        "one-param",
        "two-params",
        "case-and-spaces",
        "two-challenges",
        "bare-schemes",
        "token68",
        "escapes",
        "empty-elements",
    ],
)
def test_parses(header: str, expected: list[Challenge]) -> None:
    assert parse(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        'Bearer realm="unterminated',
        'Bearer realm="a", realm="b"',
        "Bearer realm=",
        'Bearer resource_metadata="x" junk',
        "Bearer@ realm=a",
        '"Bearer"',
    ],
)
def test_refuses_what_the_grammar_forbids(header: str) -> None:
    with pytest.raises(ChallengeError):
        parse(header)


def test_as_dict_matches_the_schema_shape() -> None:
    (challenge,) = parse(f'Bearer resource_metadata="{PRM}"')
    assert challenge.as_dict() == {"scheme": "Bearer", "params": {"resource_metadata": PRM}}
    assert challenge.is_scheme("BEARER")
