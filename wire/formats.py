"""String formats the schemas assert, shared with the mocks so both refuse the same values.

`is_email` is JSON Schema's `email` format (2020-12 §7.3.2: a Mailbox of RFC 5321 §4.1.2).
jsonschema's own check only looks for an "@", so `"@"` and `"x@y\\r\\nBcc: z@w"` (a header
injection if the address reaches a mail header) would pass; the schemas are compiled with
`FORMAT_CHECKER` below instead, and the mock provider calls `is_email` before it keys an
account on an address.

    >>> is_email("dev@example.com"), is_email('"a b"@[192.0.2.1]')
    (True, True)
    >>> is_email("@"), is_email("x@y\\r\\nBcc: z@w"), is_email("a..b@example.com")
    (False, False, False)
"""

from __future__ import annotations

import ipaddress
import re

from jsonschema import Draft202012Validator, FormatChecker

__all__ = ["FORMAT_CHECKER", "is_email"]

# RFC 5321 §4.1.2 (atext from RFC 5322 §3.2.3); ASCII only: internationalised addresses are
# the `idn-email` format (RFC 6531), which no APP message uses.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_STRING = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_QUOTED_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"')
_SUB_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

MAX_LOCAL_PART = 64
"""RFC 5321 §4.5.3.1.1, in octets."""
MAX_DOMAIN = 255
"""RFC 5321 §4.5.3.1.2."""
MAX_MAILBOX = 254
"""§4.5.3.1.3: a path is at most 256 octets including its angle brackets."""


def _domain(domain: str) -> bool:
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        try:
            if literal[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(literal[5:])
            else:
                ipaddress.IPv4Address(literal)
        except ValueError:
            return False
        return True
    if len(domain) > MAX_DOMAIN:
        return False
    return all(_SUB_DOMAIN.fullmatch(label) for label in domain.split("."))


def is_email(value: object) -> bool:
    """Whether `value` is an RFC 5321 Mailbox (`local-part@domain`). Non-strings pass, as
    JSON Schema formats apply to strings only."""
    if not isinstance(value, str):
        return True
    if len(value) > MAX_MAILBOX or not value.isascii():
        return False
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or len(local) > MAX_LOCAL_PART:
        return False
    if not (_DOT_STRING.fullmatch(local) or _QUOTED_STRING.fullmatch(local)):
        return False
    return _domain(domain)


def _checker() -> FormatChecker:
    stock = Draft202012Validator.FORMAT_CHECKER
    checker = FormatChecker(formats=())
    checker.checkers = dict(stock.checkers)
    checker.checks("email")(is_email)
    return checker


FORMAT_CHECKER = _checker()
"""Draft 2020-12's format checks with `email` replaced by `is_email`."""
