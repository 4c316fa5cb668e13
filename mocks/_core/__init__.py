"""The shared core of the three mocks: clock, request signing, keys and JWS, state."""

from __future__ import annotations
