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


def test_provspec_role_collects_the_checks_and_passes_against_the_embedded_mock(
    pytester: pytest.Pytester,
) -> None:
    from conformance.checks import checks_for
    from spec.requirement import Role

    expected = len(checks_for(Role.PROVIDER, "app-next"))
    result = pytester.runpytest(
        "--provspec-role",
        "provider",
        "--provspec-profile",
        "app-next",
        "--provspec-fuzz-examples",
        "2",
        "-p",
        "no:cacheprovider",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0
    # Checks that judge only what the target happens to show (a pending resource, a retried
    # redemption) skip against the mock, which shows neither; each says so.
    assert outcomes.get("skipped", 0) <= 2
    assert outcomes["passed"] + outcomes.get("skipped", 0) == expected


@pytest.mark.parametrize("role", ["orchestrator", "agent"])
def test_the_other_roles_run_through_pytest_too(pytester: pytest.Pytester, role: str) -> None:
    from conformance.checks import checks_for
    from spec.requirement import Role

    expected = len(checks_for(Role(role), "app-0.1d"))
    result = pytester.runpytest(
        "--provspec-role", role, "--provspec-profile", "app-0.1d", "-p", "no:cacheprovider"
    )
    outcomes = result.parseoutcomes()
    # A check whose requirements do not apply in 0.1d is reported as skipped, with why.
    assert outcomes.get("failed", 0) == 0
    assert outcomes["passed"] + outcomes.get("skipped", 0) == expected


def test_provspec_role_fails_exactly_what_provspec_run_fails(pytester: pytest.Pytester) -> None:
    import os
    import subprocess
    import sys

    from mocks.hosting import bind

    probe = bind("127.0.0.1", 0)
    port = probe.port
    probe.sock.close()
    command = [
        sys.executable,
        "-m",
        "conformance",
        "mock",
        "provider",
        "--port",
        str(port),
        "--hmac-secret",
        "whsec_t",
        "--fault",
        "code-reuse",
    ]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    ) as mock:
        try:
            assert mock.stdout is not None
            mock.stdout.readline()
            result = pytester.runpytest(
                "--provspec-role",
                "provider",
                "--provspec-target",
                f"http://127.0.0.1:{port}/api/app/",
                "--provspec-hmac-secret",
                "whsec_t",
                "-p",
                "no:cacheprovider",
            )
        finally:
            mock.terminate()
            mock.wait(timeout=15)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1
    result.stdout.fnmatch_lines(["*PRV-CNS-007: a second use of a code must get invalid_grant*"])


def test_provspec_role_with_a_bad_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "--provspec-role", "provider", "--provspec-target", "ftp://nowhere/"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*not a usable base URL*"])


def test_provspec_role_stops_at_preflight_with_one_message(pytester: pytest.Pytester) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = pytester.runpytest(
        "--provspec-role",
        "provider",
        "--provspec-target",
        f"http://127.0.0.1:{port}/api/app/",
        "--provspec-hmac-secret",
        "whsec_x",
    )
    assert result.ret == 3  # the environment: nothing accepts connections there
    output = result.stdout.str() + result.stderr.str()
    assert output.count("preflight failed") == 1
    assert "connection refused" in output


def test_the_session_ends_with_the_verdict_of_the_checks_it_ran(
    pytester: pytest.Pytester,
) -> None:
    """The plugin words the verdict as `provspec run` does, over the checks pytest chose: a
    run of the discovery checks alone judges the discovery requirements, not the rest."""
    result = pytester.runpytest(
        "--provspec-role",
        "provider",
        "--provspec-profile",
        "app-0.1d",
        "-k",
        "discovery and not capabilities",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["provspec: PASS: 0 failing requirement(s): none"])
