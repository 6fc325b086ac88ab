"""Import layering: `augment` uses only av_seld's leaf modules (errors, utils.atomic, classes, geometry, timing,
arrays); leaf modules import only earlier leaves; models import neither the pre-training job nor training; viz and
selfsup take the array geometry from `av_seld.arrays`, not from `augment`; no two modules import each other, directly
or through others; nothing imports `tools/`."""

from __future__ import annotations

import ast
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
# In dependency order: each leaf may import only the leaves before it (so they cannot form a cycle).
LEAF_MODULES = ("errors", "utils.atomic", "classes", "geometry", "timing", "arrays")
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
        path = REPO / "av_seld" / (leaf.replace(".", "/") + ".py")
        used = {m for m in imported_modules(path) if m.startswith("av_seld")}
        # "from av_seld.geometry import sph_to_cart" also yields "av_seld.geometry.sph_to_cart".
        beyond = {m for m in used if not any(m == e or m.startswith(e + ".") for e in earlier)}
        assert not beyond, f"{path.relative_to(REPO)} imports {sorted(beyond)}"


def test_models_import_neither_selfsup_nor_training():
    for path in (REPO / "av_seld" / "models").rglob("*.py"):
        used = imported_modules(path)  # function-level imports included
        bad = sorted(m for m in used for banned in ("av_seld.selfsup", "av_seld.training")
                     if m == banned or m.startswith(banned + "."))
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def _array_names() -> set[str]:
    """Top-level names that av_seld/arrays.py defines."""
    names = set()
    for node in ast.parse((REPO / "av_seld" / "arrays.py").read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_viz_and_selfsup_take_array_geometry_from_av_seld_arrays():
    array_names = _array_names()
    assert {"MIC_CAPSULES_DEG", "MIC_PAIRS", "SPEED_OF_SOUND", "mic_delays_s"} <= array_names
    for path in [*(REPO / "av_seld" / "viz").rglob("*.py"), *(REPO / "av_seld" / "selfsup").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "augment":
                taken = sorted({alias.name for alias in node.names} & (array_names | {"spatial", "acs"}))
                assert not taken, f"{path.relative_to(REPO)} takes {taken} from {node.module}; use av_seld.arrays"
            elif isinstance(node, ast.Import):
                spatial = [a.name for a in node.names if a.name in ("augment.spatial", "augment.acs")]
                assert not spatial, f"{path.relative_to(REPO)} imports {spatial}; use av_seld.arrays"


def _module_graph() -> dict[str, set[str]]:
    """Module name -> the av_seld / augment modules it imports anywhere in its source (inside functions and under
    TYPE_CHECKING too): ``from P import name`` counts as importing ``P.name`` when that is a module, else ``P``.
    A module's own parent packages are left out (``from av_seld import __version__``): Python initialises them before
    the module in any case."""
    paths = {}
    for package in ("av_seld", "augment"):
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in paths.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.relative_to(REPO)}: relative import"
                for alias in node.names:
                    targets.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in paths
                                else node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t in paths and t != name and not name.startswith(t + ".")}
    return graph


def test_no_import_cycles():
    graph = _module_graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
