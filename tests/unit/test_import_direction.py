"""The layers import downwards only: contracts <- libs/domain <- libs/platform <- services, and tooling
(tools/, simulator/) sits on top where nothing that runs in production imports it.

Read from the source with `ast`, so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())

# (the files, the packages they must not import)
RULES = [
    ("contracts", ("libs", "services", "tools", "simulator")),
    ("libs/domain", ("libs.platform", "services", "tools", "simulator")),
    ("libs/platform", ("services", "tools", "simulator")),
    *((f"services/{name}", ("tools", "simulator", *(f"services.{o}" for o in SERVICES if o != name)))
      for name in SERVICES),
]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module a file imports (relative imports stay inside their own package)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, node.module)]
            # `from services import balancing` names a package through its parent
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(("folder", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_layer_imports_only_downwards(folder: str, forbidden: tuple[str, ...]) -> None:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no Python files under {folder}"
    breaches = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if any(_within(module, package) for package in forbidden)
    ]
    assert breaches == []


def test_the_checker_sees_lazy_and_from_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom services import balancing\n\ndef f():\n    from tools.stack import up\n")
    modules = [m for _, m in imported_modules(source)]
    assert "os" in modules and "services.balancing" in modules and "tools.stack" in modules
