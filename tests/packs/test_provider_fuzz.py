from __future__ import annotations

import pytest
from schemathesis.core.result import Err

from conformance.fuzz import _schema, generate_cases


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
def test_every_signed_operation_gets_cases_the_same_for_a_seed(profile: str) -> None:
    cases = generate_cases(profile, 2, seed=7)
    assert cases == generate_cases.__wrapped__(profile, 2, seed=7)  # drawn again, not cached
    signed = {
        result.ok().label
        for result in _schema(profile).get_all_operations()
        if not isinstance(result, Err)
        and result.ok().path.startswith(("/provisioning/", "/oauth/token", "/oauth/revoke"))
    }
    assert {case.operation for case in cases} == signed
    assert all("{" not in case.path for case in cases)  # path parameters filled in
