"""Conformance packs: the checks of one role, one module per protocol step."""
