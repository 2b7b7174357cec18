"""Only shared/storage/ imports the storage SDKs (azure.data.tables, azure.storage.*): a reader
finds every storage call in one package, and a change of SDK touches one package."""

from __future__ import annotations

import ast
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
STORAGE = SHARED / "storage"
FORBIDDEN = ("azure.data.tables", "azure.storage")


def _imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from azure import storage` names the package in its aliases
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _storage_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return sorted(
        name
        for name in _imported_modules(tree)
        if any(name == root or name.startswith(f"{root}.") for root in FORBIDDEN)
    )


def test_only_the_storage_package_imports_the_storage_sdks() -> None:
    offenders = {
        str(path.relative_to(SHARED.parent)): found
        for path in sorted(SHARED.rglob("*.py"))
        if STORAGE not in path.parents and (found := _storage_imports(path))
    }
    assert offenders == {}


def test_the_check_sees_every_form_of_import() -> None:
    source = (
        "import azure.storage.queue\n"
        "from azure.data.tables import TableClient\n"
        "from azure import storage\n"
        "from azure.core import MatchConditions\n"
        "def later():\n    import azure.data.tables.aio\n"
    )
    assert sorted(
        name
        for name in _imported_modules(ast.parse(source))
        if any(name == root or name.startswith(f"{root}.") for root in FORBIDDEN)
    ) == [
        "azure.data.tables",
        "azure.data.tables.TableClient",
        "azure.data.tables.aio",
        "azure.storage",
        "azure.storage.queue",
    ]
