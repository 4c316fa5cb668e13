from __future__ import annotations

import pytest


def test_known_requirement_ids_collect_and_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requirement("PRV-DSC-001")
        def test_ok():
            assert 1 + 1 == 2
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["provspec *: * requirements in the registry"])


def test_unknown_requirement_id_is_an_error_at_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requirement("PRV-DSC-0001")
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*unknown requirement ID 'PRV-DSC-0001'*did you mean*PRV-DSC-001*"]
    )


def test_marker_without_ids_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requirement()
        def test_empty():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*names no requirement ID*"])
