"""A quick "valid" for instances that are valid, from jsonschema-rs; jsonschema explains the rest.

Most instances a run validates are valid (a mock's answers, a client's requests), and
jsonschema spends ~1 ms walking a catalog answer where jsonschema-rs (a dependency of
schemathesis) spends ~10 µs. `QuickCheck` only ever answers "certainly valid"; any doubt
(`False`) sends the instance to jsonschema, whose issues are what provspec reports. So the
answer of `SchemaStore.validate` cannot change as long as jsonschema-rs never calls valid what
jsonschema refuses. Where the two read a schema or an instance differently, the quick check
stands aside:

- instances holding anything but dict (with str keys), list, str, bool, None and 64-bit ints:
  jsonschema-rs counts `60.0` as an integer (the wire validator does not) and a tuple as an
  array (jsonschema does not), and it compares floats its own way (`multipleOf`, `enum`);
- schemas whose regular expressions use anything beyond literal characters, classes of them,
  `\\x..` and escaped punctuation: `\\s`, `\\w`, `\\d`, `\\b` and inline flags mean different
  things in Python's `re` and in Rust's regex, and so do `{,n}` and set operations;
- formats: every format jsonschema asserts is checked by the very same checker
  (`wire.formats.FORMAT_CHECKER`); a format only jsonschema-rs knows can only make it stricter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from wire.formats import FORMAT_CHECKER

try:
    import jsonschema_rs
except ImportError:  # pragma: no cover - schemathesis depends on it; without it, no shortcut
    jsonschema_rs = None  # type: ignore[assignment]

__all__ = ["QuickCheck", "plain_json"]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
# A pattern both engines read alike: literals, classes, anchors, groups, alternation and
# counted repetition, escapes only of punctuation or as \xHH.
_ESCAPE = re.compile(r"\\(.)")
_SAFE_ESCAPED = frozenset("\\.-/^$*+?()[]{}|_~:#@!%&'\",;= ")  # not < >: word bounds in Rust
_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}")
_UNSAFE_TEXT = ("{,", "[:", "&&", "--", "~~")


def plain_json(instance: Any) -> bool:
    """Whether `instance` holds only what both validators read the same way."""
    stack = [instance]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            if not all(type(key) is str for key in item):
                return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is int:
            if not _INT_MIN <= item <= _INT_MAX:
                return False
        elif kind is not str and kind is not bool and item is not None:
            return False
    return True


def _pattern_alike(pattern: str) -> bool:
    if "(?" in pattern.replace("(?:", "") or any(text in pattern for text in _UNSAFE_TEXT):
        return False
    for match in _ESCAPE.finditer(pattern):
        escaped = match.group(1)
        if escaped == "x":
            if not _HEX_PAIR.match(pattern, match.end()):
                return False
        elif escaped not in _SAFE_ESCAPED:
            return False
    if _nested_class(pattern):
        return False
    try:  # a pattern Python cannot read must reach jsonschema, which raises on it
        re.compile(pattern)
    except re.error:
        return False
    return True


def _nested_class(pattern: str) -> bool:
    """Whether a `[` stands inside a character class: a nested class to Rust, a literal `[`
    to Python."""
    inside = False
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            position += 2
            continue
        if char == "[":
            if inside:
                return True
            inside = True
            # A "]" right after "[" or "[^" is a literal member in both engines.
            position += 1
            if pattern.startswith("^", position):
                position += 1
            if pattern.startswith("]", position):
                position += 1
            continue
        if char == "]" and inside:
            inside = False
        position += 1
    return False


def _patterns(schema: Any) -> Iterator[str]:
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("pattern"), str):
                yield item["pattern"]
            if isinstance(item.get("patternProperties"), dict):
                yield from (str(key) for key in item["patternProperties"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _format_checks() -> dict[str, Callable[[str], bool]]:
    def check(name: str) -> Callable[[str], bool]:
        return lambda value: FORMAT_CHECKER.conforms(value, name)

    return {name: check(name) for name in FORMAT_CHECKER.checkers}


class QuickCheck:
    """jsonschema-rs twins of one store's validators in one mode (default or strict), over
    the same `$ref` registry. Built lazily; a schema it cannot compile gets no twin."""

    def __init__(self, resources: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        self._resources = resources
        self._registry: Any = None
        self._usable = jsonschema_rs is not None and all(
            _pattern_alike(pattern) for _, contents in resources for pattern in _patterns(contents)
        )
        self._twins: dict[tuple[str, str], Any] = {}

    def passes(
        self, key: tuple[str, str], schema: Callable[[], Mapping[str, Any]], instance: Any
    ) -> bool:
        """True only when `instance` is certainly valid; False: ask jsonschema."""
        if not self._usable or not plain_json(instance):
            return False
        if key not in self._twins:
            self._twins[key] = self._compile(schema())
        twin = self._twins[key]
        if twin is None:
            return False
        try:
            return bool(twin.is_valid(instance))
        except Exception:  # any doubt goes to jsonschema, which explains what it finds
            return False

    def _compile(self, schema: Mapping[str, Any]) -> Any:
        try:
            if self._registry is None:
                self._registry = jsonschema_rs.Registry(
                    [(uri, dict(contents)) for uri, contents in self._resources]
                )
            return jsonschema_rs.Draft202012Validator(
                dict(schema),
                formats=_format_checks(),
                validate_formats=True,
                registry=self._registry,
            )
        except Exception:  # a schema jsonschema-rs cannot read is left to jsonschema alone
            return None
