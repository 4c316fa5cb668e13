from __future__ import annotations

import pytest

from wire.ssrf import SSRFError, SSRFGuard

PUBLIC = {"provider.example": ["93.184.215.14"], "rebind.example": ["93.184.215.14", "10.0.0.7"],
          "localhost": ["127.0.0.1", "::1"]}  # fmt: skip


def _resolver(host: str) -> list[str]:
    if host not in PUBLIC:
        raise SSRFError("unresolvable", host)
    return PUBLIC[host]


GUARD = SSRFGuard(resolver=_resolver)
LOOPBACK_RUN = SSRFGuard(allow_loopback=True, resolver=_resolver)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "internal_address"),
        ("https://169.254.169.254/", "internal_address"),
        ("https://127.0.0.1/", "internal_address"),
        ("https://[::1]/", "internal_address"),
        ("https://10.0.0.1/", "internal_address"),
        ("https://192.168.1.1/", "internal_address"),
        ("https://[fc00::1]/", "internal_address"),
        ("https://2130706433/", "internal_address"),
        ("https://0x7f.1/", "internal_address"),
        ("https://0177.0.0.1/", "internal_address"),
        ("https://[::ffff:127.0.0.1]/", "internal_address"),
        ("https://0.0.0.0/", "internal_address"),
        ("https://rebind.example/", "internal_address"),
        ("https://localhost/", "internal_address"),
        ("http://provider.example/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("data:text/html,hi", "scheme"),
        ("https://trusted.example@provider.example/", "userinfo"),
        ("https://provider.example/#frag", "fragment"),
        ("https://provider.example/ x", "malformed"),
        ("https://provider.example:99999/", "malformed"),
        ("https:///nohost", "malformed"),
        ("https://nowhere.example/", "unresolvable"),
    ],
)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(SSRFError) as caught:
        GUARD.check_url(url)
    assert caught.value.reason == reason


def test_public_https_is_allowed() -> None:
    GUARD.check_url("https://provider.example/.well-known/oauth-protected-resource/api")


def test_loopback_only_when_the_run_allows_it() -> None:
    LOOPBACK_RUN.check_url("http://127.0.0.1:8400/provisioning/health")
    LOOPBACK_RUN.check_url("http://localhost:8400/")
    with pytest.raises(SSRFError):
        LOOPBACK_RUN.check_url("http://10.0.0.1/")
    with pytest.raises(SSRFError):
        LOOPBACK_RUN.check_url("http://169.254.169.254/")


def test_explicitly_allowed_hosts() -> None:
    guard = SSRFGuard(allowed_hosts=["staging.internal"], resolver=_resolver)
    guard.check_url("https://staging.internal/")
    with pytest.raises(SSRFError, match="http"):
        guard.check_url("http://staging.internal/")
