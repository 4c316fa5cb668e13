"""A strict parser for `WWW-Authenticate` (RFC 9110 §11.6.1, §11.2).

    challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param = token BWS "=" BWS ( token / quoted-string )

One header may hold several challenges, and commas separate both challenges and their
parameters; a bare token after a comma starts a new challenge. Parameter names are
case-insensitive (returned lower-cased) and may appear once per challenge; quoted strings
are unescaped. Several header fields are combined by the caller with ", " (RFC 9110 §5.3).

    >>> parse('Bearer resource_metadata="https://p.example/prm", scope="a b", DPoP')
    [Challenge(scheme='Bearer', params={'resource_metadata': 'https://p.example/prm',
    'scope': 'a b'}, token68=None), Challenge(scheme='DPoP', params={}, token68=None)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Challenge", "ChallengeError", "parse"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_OWS = re.compile(r"[ \t]*")
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t -~\x80-\xff])*)"')
_PARAM_START = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]*=")


class ChallengeError(ValueError):
    """The header does not follow the RFC 9110 challenge grammar."""


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    def is_scheme(self, name: str) -> bool:
        return self.scheme.lower() == name.lower()

    def as_dict(self) -> dict[str, Any]:
        """The shape of the app-next `www_authenticate_challenge` schema."""
        result: dict[str, Any] = {"scheme": self.scheme, "params": dict(self.params)}
        if self.token68 is not None:
            result["token68"] = self.token68
        return result


def parse(header: str) -> list[Challenge]:
    """Every challenge in the header, in order; `ChallengeError` on any grammar violation."""
    if len(header) > 8192:
        raise ChallengeError("WWW-Authenticate longer than 8192 characters")
    parser = _Parser(header)
    challenges = parser.challenges()
    if not challenges:
        raise ChallengeError("WWW-Authenticate holds no challenge")
    return challenges


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip(self, pattern: re.Pattern[str] = _OWS) -> None:
        match = pattern.match(self.text, self.pos)
        if match:
            self.pos = match.end()

    def _skip_commas(self) -> bool:
        """Skip OWS and empty list elements; True if at least one comma was seen."""
        seen = False
        while True:
            self._skip()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
                seen = True
                continue
            return seen

    def _expect(self, pattern: re.Pattern[str], what: str) -> re.Match[str]:
        match = pattern.match(self.text, self.pos)
        if match is None:
            raise ChallengeError(f"expected {what} at character {self.pos} of {self.text[:80]!r}")
        self.pos = match.end()
        return match

    def _at_end(self) -> bool:
        return self.pos >= len(self.text)

    def challenges(self) -> list[Challenge]:
        found: list[Challenge] = []
        self._skip_commas()
        while not self._at_end():
            found.append(self._challenge())
            if not self._skip_commas() and not self._at_end():
                raise ChallengeError(f"expected ',' at character {self.pos}")
        return found

    def _challenge(self) -> Challenge:
        scheme = self._expect(_TOKEN, "an auth-scheme").group()
        start = self.pos
        self._skip()
        if self._at_end() or self.text[self.pos] == ",":
            return Challenge(scheme)
        if self.pos == start:
            raise ChallengeError(f"expected a space after scheme {scheme!r}")
        if not _PARAM_START.match(self.text, self.pos):
            token68 = self._expect(_TOKEN68, "token68 or auth-param").group()
            self._skip()
            if not (self._at_end() or self.text[self.pos] == ","):
                raise ChallengeError(f"unexpected text after token68 at character {self.pos}")
            return Challenge(scheme, token68=token68)
        params: dict[str, str] = {}
        while True:
            name, value = self._param()
            if name in params:
                raise ChallengeError(f"parameter {name!r} appears twice in one challenge")
            params[name] = value
            mark = self.pos
            if not self._skip_commas() or self._at_end():
                break
            if not _PARAM_START.match(self.text, self.pos):
                self.pos = mark  # a new challenge starts here; let the caller see the comma
                break
        return Challenge(scheme, params)

    def _param(self) -> tuple[str, str]:
        name = self._expect(_TOKEN, "a parameter name").group().lower()
        self._skip()
        self._expect(re.compile("="), "'='")
        self._skip()
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            raw = self._expect(_QUOTED, "a closed quoted-string").group(1)
            return name, re.sub(r"\\(.)", r"\1", raw)
        return name, self._expect(_TOKEN, "a token or quoted-string value").group()
