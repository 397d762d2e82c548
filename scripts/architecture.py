"""Draw edgetl's layout from its own imports: docs/architecture-graph.md (`--check` only compares).

Every `import` and `from ... import` under `edgetl/` counts, wherever it sits: at module level,
inside a function (the stages load TensorFlow and each other lazily) and under
`if TYPE_CHECKING:`. An import of a module's own enclosing package (`from edgetl.export import
FORMATS` inside `edgetl/export/pipeline.py`) is not an edge: Python has always run that
package's `__init__` before any of its modules, and the package's `__init__` is the stage's face.

tests/test_architecture.py fails on an import cycle between modules, a module over 500 lines,
`edgetl.runtime` reaching beyond `RUNTIME_MAY_IMPORT`, and a page that differs from this output.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "edgetl"
PAGE = REPO / "docs" / "architecture-graph.md"
STAGES = ("cli", "train", "export", "verify", "runtime")
"""The packages, drawn as rooms in this order (pipeline order, the CLI first)."""
RUNTIME_MAY_IMPORT = frozenset({"edgetl", "edgetl._version", "edgetl.errors", "edgetl.spec", "edgetl.streams"})
"""What the device runtime may use outside itself (stdlib-only helpers): it ships without TensorFlow, Keras or the stages."""

Graph = dict[str, set[str]]


def module_files() -> dict[str, Path]:
    """Every module under edgetl/ by dotted name; a package by its own name (its `__init__.py`)."""
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest known module that `name` is or lies in (`edgetl.spec.escaped` -> `edgetl.spec`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, here: str, is_package: bool, modules: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: from the package this module lives in
        anchor = here if is_package else here.rpartition(".")[0]
        for _ in range(node.level - 1):
            anchor = anchor.rpartition(".")[0]
        base = f"{anchor}.{base}".rstrip(".")
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


def imports_of(module: str, path: Path, modules: set[str]) -> set[str]:
    """The edgetl modules `module` imports anywhere in its source, less itself and its own packages."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        for name in _targets(node, module, is_package, modules):
            target = _resolve(name, modules) if name.split(".")[0] == "edgetl" else None
            if target and target != module and not module.startswith(target + "."):
                found.add(target)
    return found


def import_graph() -> Graph:
    """Module -> the edgetl modules it imports."""
    files = module_files()
    return {module: imports_of(module, path, set(files)) for module, path in files.items()}


def cycles(graph: Graph) -> list[list[str]]:
    """Each group of modules that import one another round in a circle (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def long_modules(limit: int = 500) -> dict[str, int]:
    """Modules over `limit` lines, with their line counts."""
    counts = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in module_files().items()}
    return {module: lines for module, lines in counts.items() if lines > limit}


def room(module: str) -> str:
    """The package a module belongs to (`train`, `export`, ...), or the module's own name when flat."""
    return module.split(".")[1] if module != "edgetl" else "edgetl"


def base_modules(graph: Graph) -> list[str]:
    """Flat modules that import nothing outside the flat modules: the ground floor every room may use."""
    flat = {m for m in graph if m.count(".") == 1 and room(m) not in STAGES}
    base = set(flat)
    changed = True
    while changed:  # a flat module on the ground floor imports only ground-floor modules
        changed = False
        for module in sorted(base):
            if not graph[module] <= base | {"edgetl"}:
                base.discard(module)
                changed = True
    return sorted(base)


def render(graph: Graph) -> str:
    """The page: one mermaid flowchart, a room per stage, arrows for the imports between rooms."""
    base = set(base_modules(graph))
    lines = ["flowchart TD"]
    for stage in STAGES:
        members = sorted(m.split(".", 2)[-1] if m.count(".") > 1 else "__init__" for m in graph if room(m) == stage)
        lines.append(f'    subgraph {stage}["edgetl/{stage}/"]')
        lines.append(f'        {stage}_modules["{" · ".join(members)}"]')
        lines.append("    end")
    others = sorted(room(m) for m in graph if m.count(".") == 1 and room(m) not in STAGES and m not in base)
    for name in others:
        lines.append(f'    {name}["{name}.py"]')
    lines.append('    subgraph base["ground floor: every room may use it"]')
    lines.append(f'        base_modules["{" · ".join(sorted(m.split(".")[1] + ".py" for m in base))}"]')
    lines.append("    end")
    arrows = sorted({(room(a), room(b)) for a, targets in graph.items() for b in targets
                     if room(a) != room(b) and b not in base and b != "edgetl" and a != "edgetl"})
    lines += [f"    {a} --> {b}" for a, b in arrows]
    return PAGE_TEXT.format(mermaid="\n".join(lines), modules=len(graph))


PAGE_TEXT = """# Architecture graph

Generated from the code's imports by `python scripts/architecture.py`; `tests/test_architecture.py`
fails when this page is stale, when two modules import each other round in a circle, or when a
module grows over 500 lines. An arrow means "imports", counting imports inside functions and
under `if TYPE_CHECKING:`; {modules} modules in all. The module table is in [Architecture](ARCHITECTURE.md).

```mermaid
{mermaid}
```
"""


def main(argv: list[str]) -> int:
    text = render(import_graph())
    if "--check" in argv:
        if PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE.relative_to(REPO)} is stale: run python scripts/architecture.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
