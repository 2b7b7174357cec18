"""The marker check (tests/support/markers.py) fails collection when a test's storage markers
do not match what it uses. Runs pytest on a throwaway suite whose `azurite` fixture is a stub:
only the fixture's name matters to the check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CONFTEST = """
import pytest
from tests.support.markers import pytest_collection_modifyitems  # noqa: F401

@pytest.fixture
def azurite():
    return "stub"

@pytest.fixture
def storage_connection(azurite):
    return azurite
"""

PYTEST_INI = """[pytest]
addopts = --strict-markers
markers =
    integration: stub
    e2e: stub
"""


def collect(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text(PYTEST_INI)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("import pytest\n\n" + source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("files", "complaint"),
    [
        (
            {"engine/test_x.py": "def test_reads(storage_connection): pass\n"},
            "engine/test_x.py::test_reads: uses Azurite but is not marked integration or e2e",
        ),
        (
            {"unit/test_x.py": "@pytest.mark.integration\ndef test_reads(azurite): pass\n"},
            "unit/test_x.py::test_reads: a unit test must not use Azurite",
        ),
        (
            {"unit/test_x.py": "@pytest.mark.e2e\ndef test_pure(): pass\n"},
            "unit/test_x.py::test_pure: a unit test marked e2e",
        ),
    ],
)
def test_a_mismatch_fails_collection_and_names_the_test(
    tmp_path: Path, files: dict[str, str], complaint: str
) -> None:
    result = collect(tmp_path, files)
    assert result.returncode != 0
    assert complaint in result.stderr + result.stdout


def test_matching_markers_collect_cleanly(tmp_path: Path) -> None:
    result = collect(
        tmp_path,
        {
            "engine/test_x.py": (
                "pytestmark = pytest.mark.integration\n\ndef test_reads(storage_connection): pass\n"
            ),
            "app/test_y.py": "@pytest.mark.e2e\ndef test_runs(azurite): pass\n",
            "unit/test_z.py": "def test_pure(): pass\n",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 tests collected" in result.stdout
