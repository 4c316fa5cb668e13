"""provspec: the conformance suite for the Agentic Provisioning Protocol (APP).

The public surface is small and listed in `__all__`; everything else is private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wire.errors import ProvspecError, UsageError
from wire.strictjson import StrictJSONError

if TYPE_CHECKING:
    from conformance.registry import (
        Level,
        Registry,
        RegistryError,
        Requirement,
        Role,
        Step,
        default_registry,
        load_registry,
    )
    from conformance.schemas import Profile, SchemaIssue, SchemaStore, default_store

# The registry and the schemas load on first use: a process that only needs the JSON
# parser or the errors (the mock agent, the CLI stand-ins) starts without jsonschema.
_LAZY = {
    **dict.fromkeys(
        (
            "Level",
            "Registry",
            "RegistryError",
            "Requirement",
            "Role",
            "Step",
            "default_registry",
            "load_registry",
        ),
        "conformance.registry",
    ),
    **dict.fromkeys(
        ("Profile", "SchemaIssue", "SchemaStore", "default_store"), "conformance.schemas"
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__version__ = "0.1.0"

__all__ = [
    # requirement registry
    "Level",
    "Registry",
    "RegistryError",
    "Requirement",
    "Role",
    "Step",
    "default_registry",
    "load_registry",
    # profiles and message schemas
    "Profile",
    "SchemaIssue",
    "SchemaStore",
    "default_store",
    # errors
    "ProvspecError",
    "StrictJSONError",
    "UsageError",
    "__version__",
]
