"""Count the imports inside app/ that run back up the layers, and the import cycles.

The layers below are the intended structure, lowest first: a module may import its own
layer or any lower one. Every `import` is read with ast, including those inside functions
and under TYPE_CHECKING, because a deferred import still ties two modules together.

    python scripts/import_layers.py            # report
    python scripts/import_layers.py --check    # also exit 1 if anything is found
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "app"

# The ORM tables of every domain form one layer: they describe the schema, import nothing but
# the foundation, and any service may read any table (app/models.py gathers them).
TABLES = tuple(
    f"app.{domain}.models"
    for domain in (
        "auth",
        "projects",
        "items",
        "batches",
        "annotations",
        "invites",
        "crowd",
        "reviews",
        "suggestions",
    )
)
# The HTTP adapters (JSON routers, HTML pages and the annotation page's form presenters) of
# every domain sit above all services:
# a page may show data of several domains (the project page lists batches and imports).
HTTP = tuple(
    f"app.{module}"
    for module in (
        "auth.router",
        "auth.pages",
        "auth.setup_pages",
        "projects.router",
        "projects.pages",
        "items.router",
        "batches.router",
        "batches.pages",
        "annotations.router",
        "annotations.pages",
        "annotations.presenter",
        "annotations.forms",
        "annotations.form_checks",
        "consensus.router",
        "imports.router",
        "imports.pages",
        "suggestions.router",
        "exports.router",
        "exports.pages",
        "dashboard.router",
        "dashboard.pages",
        "qualification.router",
        "qualification.pages",
        "invites.router",
        "invites.pages",
        "crowd.pages",
        "reviews.router",
        "reviews.pages",
    )
)

# Lowest first. A name covers the module itself and everything below it; the longest name
# that covers a module decides its layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "app",
            "app.config",
            "app.errors",
            "app.files",
            "app.limits",
            "app.migrate",
            "app.db",
            "app.core",
        ),
    ),
    ("tables", TABLES),
    ("auth", ("app.auth",)),
    ("projects", ("app.projects",)),
    ("items", ("app.items",)),
    ("batches", ("app.batches",)),
    ("annotations", ("app.annotations",)),
    # How votes combine: pure functions the queue's adaptive overlap also applies.
    (
        "consensus rules",
        (
            "app.consensus.aggregate",
            "app.consensus.labels",
            "app.consensus.pairwise",
            "app.consensus.votes",
        ),
    ),
    ("queue", ("app.queue",)),
    ("invites", ("app.invites",)),
    ("crowd", ("app.crowd",)),
    ("consensus", ("app.consensus",)),
    ("imports", ("app.imports",)),
    ("suggestions", ("app.suggestions",)),
    ("exports", ("app.exports",)),
    ("dashboard", ("app.dashboard",)),
    ("qualification", ("app.qualification",)),
    ("reviews", ("app.reviews",)),
    ("demo", ("app.demo",)),
    ("ops", ("app.ops",)),
    ("web", ("app.web",)),
    ("http", HTTP),
    ("entry points", ("app.main", "app.cli", "app.serving", "app.models")),
]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    """Index of the layer whose longest name is a prefix of `module`."""
    best, best_len = -1, -1
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            covers = module == name or module.startswith(name + ".")
            # The bare package name covers only app/__init__.py, not the whole tree.
            if name == PACKAGE and module != PACKAGE:
                covers = False
            if covers and len(name) > best_len:
                best, best_len = index, len(name)
    if best < 0:
        raise SystemExit(f"import_layers: {module} belongs to no layer; add it to LAYERS")
    return best


def resolve(name: str, modules: set[str]) -> str | None:
    """The module an import refers to (the nearest existing module up the dotted name)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def read_edges(modules: dict[str, Path]) -> list[Edge]:
    known = set(modules)
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    for source, path in sorted(modules.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from app.x import y` names module app.x.y when it exists, else app.x.
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            for name in targets:
                if name != PACKAGE and not name.startswith(PACKAGE + "."):
                    continue
                target = resolve(name, known)
                # One edge per pair of modules, however many names cross it.
                if target is not None and target != source and (source, target) not in seen:
                    seen.add((source, target))
                    edges.append(Edge(source, target, rel, node.lineno))
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_of(module: str) -> str:
    """`app.batches.queue` -> `app.batches`; top-level modules stand for themselves."""
    parts = module.split(".")
    return ".".join(parts[:2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 on any finding")
    args = parser.parse_args()

    modules = {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}
    edges = read_edges(modules)

    upward = [e for e in edges if layer_of(e.target) > layer_of(e.source)]
    print(f"upward imports: {len(upward)}")
    for e in upward:
        src, dst = LAYERS[layer_of(e.source)][0], LAYERS[layer_of(e.target)][0]
        print(f"  {e.path}:{e.line}  {e.source} -> {e.target}  ({src} -> {dst})")

    module_graph: dict[str, set[str]] = defaultdict(set)
    package_graph: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        module_graph[e.source].add(e.target)
        # Between packages, only the domain services count: the shared tables and the HTTP
        # adapters are layers of their own that span every package by design.
        if any(m in TABLES + HTTP for m in (e.source, e.target)):
            continue
        a, b = package_of(e.source), package_of(e.target)
        if a != b:
            package_graph[a].add(b)
    module_cycles = cycles(module_graph)
    package_cycles = cycles(package_graph)
    print(f"module cycles: {len(module_cycles)}")
    for c in module_cycles:
        print("  " + " <-> ".join(c))
    print(f"package cycles among domain services: {len(package_cycles)}")
    for c in package_cycles:
        print("  " + " <-> ".join(c))

    found = upward or module_cycles or package_cycles
    return 1 if args.check and found else 0


if __name__ == "__main__":
    sys.exit(main())
