"""Report writers: JSON results, JUnit XML, a self-contained HTML report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.events import Event, RunFinished
from conformance.report._allure import write_allure
from conformance.report._html import render_html
from conformance.report._junit import render_junit
from conformance.results import RunResult
from spec._resources import data_dir

__all__ = [
    "ReportFiles",
    "render_html",
    "render_junit",
    "results_schema",
    "write_allure",
    "write_html",
    "write_json",
    "write_junit",
]


def results_schema() -> dict[str, Any]:
    text = (
        data_dir("schemas")
        .joinpath("results")
        .joinpath("run.schema.json")
        .read_text(encoding="utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def write_json(result: RunResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(result.as_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def write_junit(result: RunResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_junit(result), encoding="utf-8")


def write_html(result: RunResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result), encoding="utf-8")


@dataclass(frozen=True)
class ReportFiles:
    """Writes every report of a run when it ends (`RunFinished`): results.json, JUnit XML,
    the HTML report and the Allure results."""

    json: Path
    junit: Path
    html: Path
    allure: Path

    def paths(self) -> dict[str, Path]:
        return {"json": self.json, "junit": self.junit, "html": self.html, "allure": self.allure}

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            write_json(event.result, self.json)
            write_junit(event.result, self.junit)
            write_html(event.result, self.html)
            write_allure(event.result, self.allure)
