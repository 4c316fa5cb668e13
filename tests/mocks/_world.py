"""A served world for CLI and agent tests: mock provider (and, for app-next, the orchestrator's
HTTP side) on loopback, and an in-process runner for `provspec orchestrator …`."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.cli import main
from mocks._core.store import SQLiteStore
from mocks.hosting import ServedInThread
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.provider.app import ProviderMock, ProviderSettings


@dataclass
class World:
    state: Path
    provider: ProviderMock
    orchestrator_issuer: str

    def run(self, arguments: Sequence[str]) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["orchestrator", *arguments, "--state", str(self.state)])
        return code, out.getvalue()

    def cli(self, *arguments: str) -> dict[str, Any]:
        _, stdout = self.run([*arguments, "--json"])
        document: dict[str, Any] = json.loads(stdout)
        return document


@contextlib.contextmanager
def served_world(tmp_path: Path, profile: str, *, faults: Sequence[str] = ()) -> Iterator[World]:
    state = tmp_path / "orchestrator.db"
    orchestrator_listener, provider_listener = ServedInThread(), ServedInThread()
    provider = ProviderMock(
        ProviderSettings(
            profile=profile,
            base_url=provider_listener.origin + "/api/app/",
            orchestrator_issuer=orchestrator_listener.origin,
            faults=tuple(faults),
        )
    )
    store = SQLiteStore(state)
    core = OrchestratorMock(
        OrchestratorSettings(profile=profile, issuer=orchestrator_listener.origin, store=store)
    )
    world = World(state, provider, orchestrator_listener.origin)
    with provider_listener.serving(provider.app), orchestrator_listener.serving(core.app):
        init = world.cli(
            "init",
            "--profile",
            profile,
            "--issuer",
            orchestrator_listener.origin,
            "--provider",
            f"mockbase={provider.base_url}#{provider.settings.hmac_secret}",
            "--accept-tos",
        )
        assert init["ok"], init
        yield world
    store.close()
