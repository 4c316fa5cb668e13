"""provspec's stand-ins for the three APP roles: orchestrator, provider and agent.

Each mock is an ASGI app used in-process through `httpx.ASGITransport` and served on
loopback when a real role under test must call it. (The mocks arrive with the mocks issue;
this package exists so the distribution's layout is fixed from the start.)
"""

from __future__ import annotations

__all__: list[str] = []
