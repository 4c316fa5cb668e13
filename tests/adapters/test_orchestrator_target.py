"""The orchestrator target's identities: drawn from a seed the run records."""

from __future__ import annotations

from dataclasses import asdict

from conformance.adapters.orchestrator import OrchestratorTarget, OrchestratorTargetConfig
from wire.formats import is_email


def test_the_users_signed_in_come_from_a_recorded_seed() -> None:
    config = OrchestratorTargetConfig(command="my-orchestrator")
    assert isinstance(asdict(config)["identity_seed"], int)  # in the run's recorded settings
    first = OrchestratorTarget(config).identities
    again = OrchestratorTarget(OrchestratorTargetConfig(identity_seed=config.identity_seed))
    emails = [first.email() for _ in range(20)]
    assert [again.identities.email() for _ in range(20)] == emails
    assert len(set(emails)) == 20
    assert all(is_email(email) and email.endswith("@example.com") for email in emails)
