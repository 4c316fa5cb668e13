"""The OpenAPI documents load in schemathesis, every $ref resolves, every operation generates."""

from __future__ import annotations

from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.core.result import Err

from spec._resources import data_dir
from wire import strictjson

SCHEMAS = Path(str(data_dir("schemas")))
DOCUMENTS = sorted(SCHEMAS.glob("*/*.openapi.json"))
EXPECTED = {
    "app-0.1d/provider.openapi.json",
    "app-next/provider.openapi.json",
    "app-next/orchestrator.openapi.json",
}


def test_each_surface_has_an_openapi_document() -> None:
    assert {f"{path.parent.name}/{path.name}" for path in DOCUMENTS} >= EXPECTED


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_schemathesis_loads_and_generates_every_operation(document: Path) -> None:
    raw = strictjson.load_path(document)
    assert raw["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_path(document)
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            pytest.fail(f"{document.name}: schemathesis cannot load an operation: {result.err()}")
        operations.append(result.ok())
    assert len(operations) >= 3
    for operation in operations:
        assert operation.definition.raw.get("operationId"), f"{operation.label} has no operationId"
        case = hypothesis.find(
            operation.as_strategy(),
            lambda _: True,
            # Generation only: shrinking a found case to a minimal one is what made this slow.
            settings=hypothesis.settings(
                database=None, max_examples=1, phases=[hypothesis.Phase.generate]
            ),
        )
        assert case.operation is operation
