"""The rules the tree states (hpm_boot/__init__.py, docs/architecture.md), read from the
source: what start-path modules may import, and no import cycles anywhere.

Every import statement counts, those inside functions too; only imports under
``if TYPE_CHECKING:`` (never executed) do not.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import hpm_boot
from hpm_boot.commands import COMMANDS

PACKAGE = Path(hpm_boot.__file__).resolve().parent
#: start-path imports that happen only after ``_pyz.setup()`` made the rest importable:
#: (importing module, imported module, the call that must come first in the same function)
AFTER_SETUP = {("hpm_boot.__main__", "hpm_boot.cli"): "setup"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
START_PATH = {name for name, path in MODULES.items() if path.parent == PACKAGE}


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` is in the body of a ``try`` that handles ImportError: an import
    that may fail (another Python's module name, a package that may be absent)."""
    while node in parents:
        child, node = node, parents[node]
        if isinstance(node, ast.Try) and child in node.body and any(
                h.type is not None and "ImportError" in ast.unparse(h.type) for h in node.handlers):
            return True
    return False


def imports(name: str, source: str | None = None, required: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) of every executed import statement of module ``name``
    (its file, or ``source``), resolved to hpm_boot's modules where they are one
    (``from hpm_boot import x``); ``required``: without those guarded by
    ``except ImportError``."""
    tree = ast.parse(MODULES[name].read_text() if source is None else source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = []
    for node in ast.walk(tree):
        if _type_checking_only(node, parents) or (required and _optional(node, parents)):
            continue
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(name.split(".")[: -node.level] + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub if sub in MODULES else base, node.lineno))
    return [(m, line) for m, line in out if m != "__future__"]


def edges() -> dict[str, set[str]]:
    """Module -> the hpm_boot modules it imports, the packages above them included (an
    import runs their ``__init__`` first), and ``cli``'s import of every command module."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for imported, _ in imports(name):
            while imported in MODULES and imported != "hpm_boot":
                graph[name].add(imported)
                imported = imported.rpartition(".")[0]
    graph["hpm_boot.cli"] |= {f"hpm_boot.commands.{info.module}" for info in COMMANDS.values()}
    for name in graph:
        graph[name].discard(name)
    return graph


def test_start_path_imports_only_the_standard_library_and_itself() -> None:
    stdlib = sys.stdlib_module_names
    wrong = []
    for name in sorted(START_PATH):
        for imported, line in imports(name, required=True):
            if imported.split(".")[0] in stdlib or imported in START_PATH:
                continue
            call = AFTER_SETUP.get((name, imported))
            if call is not None and _called_before(name, call, line):
                continue
            wrong.append(f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: imports {imported}")
    assert wrong == [], "start-path modules may import only the standard library and each other:\n" + \
        "\n".join(wrong)


def _called_before(name: str, call: str, line: int) -> bool:
    """Whether the function around ``line`` of module ``name`` calls ``call()`` before it."""
    tree = ast.parse(MODULES[name].read_text())
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef) and func.lineno <= line <= (func.end_lineno or 0):
            return any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == call and n.lineno < line
                       for n in ast.walk(func))
    return False


def test_warm_start_modules_are_start_path_modules() -> None:
    assert {f"hpm_boot.{m}".removesuffix(".__init__") for m in hpm_boot.WARM_START} <= START_PATH


def test_every_command_has_its_module() -> None:
    for name, info in COMMANDS.items():
        assert f"hpm_boot.commands.{info.module}" in MODULES, name


def test_no_command_imports_the_cli() -> None:
    graph = edges()
    assert [m for m in MODULES if m.startswith("hpm_boot.commands") and "hpm_boot.cli" in graph[m]] == []


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every cycle a depth-first walk of ``graph`` meets, as ``a -> b -> a``."""
    cycles = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_cycles() -> None:
    assert find_cycles(edges()) == []


def test_the_checks_see_what_they_look_for() -> None:
    """A lazy import in a function counts, a TYPE_CHECKING one does not; cycles are found."""
    source = ("TYPE_CHECKING = False\nif TYPE_CHECKING:\n    import yaml\n"
              "def f():\n    from packaging.markers import Marker\n    from hpm_boot import log\n")
    assert imports("hpm_boot.target", source) == [("packaging.markers", 5), ("hpm_boot.log", 6)]
    optional = "try:\n    import uv\nexcept (ImportError, OSError):\n    pass\nimport yaml\n"
    assert imports("hpm_boot.target", optional, required=True) == [("yaml", 5)]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
