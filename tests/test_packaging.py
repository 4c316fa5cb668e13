"""An installed provspec works outside the checkout: the wheel carries schemas and fixtures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("provspec-*.whl")
    return built


def test_wheel_ships_data_plugin_and_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(
            archive.read(n).decode() for n in names if n.endswith("entry_points.txt")
        )
    assert "spec/_data/schemas/app-0.1d/profile.toml" in names
    assert any(n.startswith("spec/_data/fixtures/examples/app-next/") for n in names)
    assert "spec/requirements/provider.toml" in names
    assert "mocks/faults/provider.toml" in names
    assert {"wire/__init__.py", "spec/__init__.py", "mocks/__init__.py"} <= names
    assert "provspec = conformance._launch:main" in entry_points
    assert "[pytest11]" in entry_points
    assert "provspec = conformance.pytest_plugin" in entry_points


def test_unpacked_wheel_runs_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = (
        "import conformance, spec._resources as r, json;"
        "print(json.dumps([conformance.__file__, str(r.data_dir('schemas'))]))"
    )
    located = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    package_file, schemas = json.loads(located.stdout)
    assert package_file.startswith(str(site))
    assert schemas.startswith(str(site))
    listed = subprocess.run(
        [sys.executable, "-m", "conformance", "requirements", "--format", "json"],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(listed.stdout)["count"] >= 150
    selftest = subprocess.run(
        # The reference run and a few faults show the installed data, schemas and faults are
        # found from elsewhere; the whole matrix runs once, in tests/test_run_cli.py.
        [
            sys.executable,
            "-m",
            "conformance",
            "selftest",
            "--profile",
            "app-0.1d",
            "--role",
            "provider",
            "--fault",
            "*signature*",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert selftest.returncode == 0, selftest.stdout[-2000:] + selftest.stderr[-2000:]
    caught = re.search(
        r"detection rate 100% \((\d+)/(\d+) fault runs caught\), false positives 0", selftest.stdout
    )
    assert caught, selftest.stdout[-2000:]
    assert caught[1] == caught[2], selftest.stdout[-2000:]
    assert int(caught[1]) >= 5, selftest.stdout[-2000:]
