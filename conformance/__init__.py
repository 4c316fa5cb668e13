"""provspec: the conformance suite for the Agentic Provisioning Protocol (APP).

The public surface is small and listed in `__all__`; everything else is private.
"""

from __future__ import annotations

from conformance.errors import ProvspecError, UsageError
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
from conformance.strictjson import StrictJSONError

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
