"""provspec: the conformance suite for the Agentic Provisioning Protocol (APP).

The public surface is small and listed in `__all__`; everything else is private. The
registry and the profiles live in `spec`, the errors and the JSON parser in `wire`; they are
named here too, as they always were.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wire.errors import ProvspecError, UsageError
from wire.strictjson import StrictJSONError

if TYPE_CHECKING:
    from spec.profiles import Profile
    from spec.registry import Registry, RegistryError, default_registry, load_registry
    from spec.requirement import Level, Requirement, Role, Step
    from spec.schemas import SchemaIssue, SchemaStore, default_store

# The registry and the schemas load on first use: a process that only needs the JSON
# parser or the errors starts without jsonschema.
_LAZY = {
    **dict.fromkeys(("Level", "Requirement", "Role", "Step"), "spec.requirement"),
    **dict.fromkeys(
        ("Registry", "RegistryError", "default_registry", "load_registry"), "spec.registry"
    ),
    "Profile": "spec.profiles",
    **dict.fromkeys(("SchemaIssue", "SchemaStore", "default_store"), "spec.schemas"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
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
