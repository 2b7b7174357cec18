"""The CLI installs on its own (`pip install ./cli`): it declares only client libraries and
imports nothing of the app, so a user's laptop needs none of the Functions runtime."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "cli"
CLIENT_LIBRARIES = {"click", "httpx", "pyyaml", "jmespath", "rich"}


def test_it_declares_only_client_libraries() -> None:
    project = tomllib.loads((CLI / "pyproject.toml").read_text())["project"]
    names = {
        dep.split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for dep in project["dependencies"]
    }
    assert names <= CLIENT_LIBRARIES, names - CLIENT_LIBRARIES


def test_it_imports_only_itself_the_standard_library_and_its_dependencies() -> None:
    allowed = {"scheduler_cli", "click", "httpx", "yaml", "jmespath", "rich"}
    foreign: list[str] = []
    for path in (CLI / "scheduler_cli").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            foreign += [
                f"{path.name}: {root}"
                for root in roots
                if root not in allowed and root not in sys.stdlib_module_names
            ]
    assert not foreign, foreign
