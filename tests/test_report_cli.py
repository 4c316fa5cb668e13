"""`provspec report RESULTS.json`: the matrix and the top failures, as text or markdown."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main


@pytest.fixture(scope="module")
def failed_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reports = tmp_path_factory.mktemp("reports")
    assert (
        main(["run", "--fault", "deep-link-long-lived", "--report-dir", str(reports), "--quiet"])
        == 1
    )
    return reports / "results.json"


def test_text_shows_the_matrix_and_the_failure_with_its_evidence(
    failed_results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["report", str(failed_results)]) == 0
    out = capsys.readouterr().out
    assert ": FAIL" in out.splitlines()[0]
    assert "MUST" in out
    assert "passed" in out
    assert "failed" in out
    assert "PRV-PRO-014 [MUST] failed, implementation" in out
    assert "POST https://provider.mock/api/app/provisioning/deep_links" in out


def test_markdown_is_a_pr_comment(
    failed_results: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    comment = tmp_path / "comment.md"
    assert (
        main(["report", str(failed_results), "--format", "markdown", "--output", str(comment)]) == 0
    )
    text = comment.read_text()
    assert text.startswith("### provspec provider")
    assert "| level |" in text
    assert "|---|" in text
    assert "| `PRV-PRO-014` | MUST | failed | implementation |" in text
    assert "<details><summary>PRV-PRO-014: evidence</summary>" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("{", "not readable JSON"), ('{"a": 1}', "not a provspec results")],
)
def test_an_unusable_file_is_a_usage_error(
    content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    assert main(["report", str(path)]) == 2
    assert message in capsys.readouterr().err
