"""The mock provider: an APP provider (0.1d or app-next) with one named fault per rule."""

from __future__ import annotations

from mocks.provider.app import ProviderMock, ProviderSettings
from mocks.provider.catalog import SERVICES, Service, service

__all__ = [
    # the app and its settings
    "ProviderMock",
    "ProviderSettings",
    # its catalog
    "SERVICES",
    "Service",
    "service",
]
