"""What a provider run is configured with: the target, the suite's orchestrator side, the
identities it sends, the payment tokens and probes it uses."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from conformance.client import ClientSettings, OrchestratorIdentity, new_seed
from conformance.consent import ConsentOptions
from conformance.credentials import CredentialProbe

EMBEDDED_PROVIDER = "https://provider.mock/api/app/"
EMBEDDED_ORCHESTRATOR = "https://orchestrator.mock"
EMBEDDED_INTERNAL = "http://169.254.169.254"
"""Where the embedded run serves documents "at an internal address": the link-local cloud
metadata address, which no SSRF policy may let a provider fetch."""
DEFAULT_FAILING_PAYMENT_TOKEN = "spt_provspec_never_issued"
"""Well-formed, but no payment service ever issued it: activating it fails everywhere."""
DEFAULT_OVERSIZED_BODY = 3 * 1024 * 1024
"""PRV-PRO-012's probe: above the common framework limits (nginx 1 MiB, Django 2.5 MB)."""


@dataclass
class ProviderTargetConfig:
    profile: str = "app-0.1d"
    base_url: str | None = None
    """The provider's base URL (ends in /); None runs against the embedded mock provider."""
    hmac_secret: str | None = None
    existing_email: str = "existing@example.com"
    """An email that already has an account at the provider (the consent path)."""
    scripted_consent: bool | None = None
    """Whether the provider's consent page can be approved by the suite (mocks: yes); the
    same as `consent` mode "scripted"."""
    consent: ConsentOptions | None = None
    """How a human's consent is had on a real provider (interactive, command, browser);
    None: scripted on the embedded mock, otherwise interactive when this is a terminal."""
    orchestrator_public_url: str | None = None
    """app-next: the origin a provider outside this machine reaches the suite's orchestrator
    side at (a tunnel, a host); it becomes the issuer. None: where it binds."""
    orchestrator_host: str = "127.0.0.1"
    orchestrator_port: int = 8401
    timeout: float = 10.0
    faults: tuple[str, ...] = ()
    """Embedded mock only: faults to inject (the self-test)."""
    allowed_hosts: tuple[str, ...] = ()
    transport: httpx.AsyncBaseTransport | None = None
    """What carries the suite's calls to a target URL (None: the network; replay: a cassette)."""
    capabilities: dict[str, bool] = field(default_factory=dict)
    """What provspec.toml [capabilities] says the target offers, overriding what it advertises."""
    fuzz_examples: int = 0
    """Schema-generated requests per operation (0: fuzzing off)."""
    fuzz_seed: int = 0
    orchestrator: OrchestratorIdentity = field(default_factory=OrchestratorIdentity)
    """How account requests name the orchestrator side (`orchestrator` member)."""
    client: ClientSettings | None = None
    """What else account requests carry (scopes, client_capabilities, configuration);
    None: the defaults, with `orchestrator` above."""
    identity_seed: int = field(default_factory=new_seed)
    """Seed of the users' names and emails (a fresh one unless given), kept in the run's
    settings: `--identity-seed` with it sends the same identities again."""
    test_payment_token: str | None = None
    """A payment token the provider's test mode activates (0.1d: a shared payment token);
    None against a real provider: checks that need a successful payment are skipped. The
    embedded mock accepts one of its own."""
    failing_payment_token: str = DEFAULT_FAILING_PAYMENT_TOKEN
    """A well-formed payment token that cannot activate, for the refusal checks."""
    credential_probes: tuple[CredentialProbe, ...] = ()
    """How issued credentials are used at the provider's API; empty: the built-in guess."""
    oversized_body_bytes: int = DEFAULT_OVERSIZED_BODY
    """Size of PRV-PRO-012's body; it must exceed the provider's limit to judge anything."""

    def describe(self) -> str:
        return self.base_url or f"embedded mock provider ({self.profile})"
