"""provspec's stand-ins for the four roles: orchestrator, provider, agent and resource server.

Each mock is an ASGI app used in-process through `httpx.ASGITransport` and served on
loopback (`mocks.hosting`) when a real role under test must call it. The public face — what
the suite (`conformance`) may import — is this package's exports, `mocks.sandbox`,
`mocks.hosting`, `mocks.faults`, `mocks.cli` and the exports of `mocks.provider`,
`mocks.orchestrator`, `mocks.resource_server` and `mocks.agent`; everything under
`mocks._core` and every `_module` is private (tests/test_layers.py). The mocks build on
`wire` and `spec` and never import `conformance`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mocks._core.network import LoopbackNetwork
    from mocks._core.store import MemoryStore, SQLiteStore, Store

# Loaded on first use: the mock agent's process imports `mocks` and needs neither httpx nor
# the stores.
_LAZY = {
    "LoopbackNetwork": "mocks._core.network",
    "MemoryStore": "mocks._core.store",
    "SQLiteStore": "mocks._core.store",
    "Store": "mocks._core.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mocks' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    # a mock's state
    "Store",
    "MemoryStore",
    "SQLiteStore",
    # mocks calling each other in one process
    "LoopbackNetwork",
]
