"""Import layering: `augment` uses only av_seld's leaf modules (errors, classes, geometry, timing, arrays); leaf
modules import only earlier leaves; nothing imports `tools/`."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# In dependency order: each leaf may import only the leaves before it (so they cannot form a cycle).
LEAF_MODULES = ("errors", "classes", "geometry", "timing", "arrays")
AUGMENT_MAY_IMPORT = {f"av_seld.{leaf}" for leaf in LEAF_MODULES}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_augment_uses_only_leaf_modules_of_av_seld():
    for path in (REPO / "augment").rglob("*.py"):
        used = {m for m in imported_modules(path) if m.startswith("av_seld")}
        allowed = {m for m in used if any(m == a or m.startswith(a + ".") or a.startswith(m + ".") or m == "av_seld"
                                          for a in AUGMENT_MAY_IMPORT)}
        assert used <= allowed, f"{path.relative_to(REPO)} imports {sorted(used - allowed)}"


def test_nothing_imports_tools():
    for package in ("av_seld", "augment", "tests"):
        for path in (REPO / package).rglob("*.py"):
            assert not any(m == "tools" or m.startswith("tools.") for m in imported_modules(path)), path


def test_leaf_modules_import_only_earlier_leaves():
    for k, leaf in enumerate(LEAF_MODULES):
        earlier = {f"av_seld.{m}" for m in LEAF_MODULES[:k]}
        used = {m for m in imported_modules(REPO / "av_seld" / f"{leaf}.py") if m.startswith("av_seld")}
        # "from av_seld.geometry import sph_to_cart" also yields "av_seld.geometry.sph_to_cart".
        beyond = {m for m in used if not any(m == e or m.startswith(e + ".") for e in earlier)}
        assert not beyond, f"av_seld/{leaf}.py imports {sorted(beyond)}"
