"""Requests generated from a profile's provider OpenAPI document, for the fuzzing check.

schemathesis reads the document and hypothesis draws the values (generation phase only:
no shrinking, no example database, so a run is bounded and leaves nothing behind). The
suite then sends each case itself, signed like every other call, because the protocol's
request authentication (HMAC or attestation) is what schemathesis cannot do.

Both libraries are imported when cases are first generated, not with this module: together
they cost ~0.25 s at import, and only a run with fuzzing on (`--fuzz-examples`) needs them.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spec._resources import data_dir
from spec.schemas import default_store
from wire import strictjson

__all__ = ["FuzzCase", "generate_cases"]

# Only the signed APP surface: discovery documents and the browser-facing authorize page are
# judged by their own checks.
_PREFIXES = ("/provisioning/", "/oauth/token", "/oauth/revoke")


@dataclass(frozen=True)
class FuzzCase:
    operation: str
    method: str
    path: str
    """Relative to the provider's base URL, with path parameters filled in."""
    template: str
    """The operation's path template, e.g. provisioning/resources/{id}."""
    body: Any
    media_type: str | None

    def form(self) -> dict[str, str]:
        """The body as form fields: scalars as text, anything nested as its JSON."""
        if not isinstance(self.body, dict):
            return {}
        return {
            str(key): value if isinstance(value, str) else json.dumps(value)
            for key, value in self.body.items()
        }


@functools.cache
def _schema(profile: str) -> Any:
    # From a path, not a dict: the document's $refs are relative to its own file.
    # A draft without its own document uses its nearest base's.
    store = default_store()
    path = Path()
    for member in store.lineage(profile):
        spec = store.profile(member)
        folder = spec.directory or Path(str(data_dir("schemas") / member))
        path = folder / "provider.openapi.json"
        if path.is_file():
            break
    strictjson.loads(path.read_bytes())  # our strict rules first: no duplicate keys, no NaN
    import schemathesis

    return schemathesis.openapi.from_path(path)


@functools.lru_cache(maxsize=8)
def generate_cases(profile: str, examples: int, *, seed: int = 0) -> tuple[FuzzCase, ...]:
    """Up to `examples` cases per operation, the same for a given seed (so a failure can be
    reproduced with the same --fuzz-examples and --fuzz-seed)."""
    from schemathesis.core.result import Err

    cases: list[FuzzCase] = []
    for result in _schema(profile).get_all_operations():
        if isinstance(result, Err):
            continue
        operation = result.ok()
        if not operation.path.startswith(_PREFIXES):
            continue
        drawn = _draw(operation, examples, seed)
        for case in drawn[:examples]:
            cases.append(
                FuzzCase(
                    operation=operation.label,
                    method=operation.method.upper(),
                    path=case.formatted_path.lstrip("/"),
                    template=operation.path.lstrip("/"),
                    body=case.body if not _is_unset(case.body) else None,
                    media_type=case.media_type,
                )
            )
    return tuple(cases)


def _draw(operation: Any, examples: int, seed: int) -> list[Any]:
    import hypothesis
    from hypothesis.errors import NonInteractiveExampleWarning

    drawn: list[Any] = []
    # Headers (the API version, the request's signature or attestation) are filled in by the
    # suite when it sends a case, so none is drawn: a fixed value per header spares
    # hypothesis the costly patterns (a 64-hex-digit signature, a JWS) it would throw away.
    unused = {parameter.name: "" for parameter in operation.headers}

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(operation.as_strategy(headers=unused))
    def draw(case: Any) -> None:
        drawn.append(case)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        draw()
    return drawn


def _is_unset(value: Any) -> bool:
    return type(value).__name__ == "NotSet"
