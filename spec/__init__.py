"""The protocol as data: the profile store and the requirement registry, read by both sides.

- `spec.profiles`: a `Profile`, its typed `[parameters]` and the requirement changes of its
  manifest (`schemas/<profile>/profile.toml`, or a draft's directory);
- `spec.schemas`: the profile store (`SchemaStore`, `default_store()`): manifests, lineage,
  message schemas and their cached validators;
- `spec.requirement`: one requirement (ID, level, role, step, text, source) and the rules an
  entry follows; `spec.registry`: the registry (`spec/requirements/*.toml`) and each
  profile's share of it;
- `spec.drafts`: what a spec author runs on a draft: lint, consistency, diff, examples.

`spec` builds on `wire` only; the suite (`conformance`) and the mocks (`mocks`) read it, and
it imports neither (tests/test_layers.py). Import the modules themselves; the public names
are re-exported by `conformance`.
"""

from __future__ import annotations

__all__: list[str] = []
