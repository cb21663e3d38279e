"""The package's layers, read from its source: every import of an ``agents_pipeline`` module
points down (issue #20).

From the bottom: ``core`` (what agents import: standard library and psycopg2 only) and the
``console`` helpers; the Dagster ``platform`` and, beside it, the HTTP ``api`` (Starlette and
uvicorn, never Dagster: issue #17); the ``alerts`` service; the domains under ``defs/``, which
do not use one another; the ``demo`` tooling; the CLI and the code location's ``definitions`` on
top. Imports inside functions count like any other: they are where upward
arrows and cycles hide, because they do not fail at import time.

Reads files only (``ast``), so it needs no database and imports nothing it checks.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "agents_pipeline"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

DOMAINS = ("heartbeats", "performance", "langsmith", "retention", "migration", "help", "security", "schema",
           "readiness", "coordination", "agents")

# Top to bottom. A unit may import itself and any unit of a lower layer; units of one layer are
# independent of each other. A module belongs to the longest unit that prefixes its name.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "definitions"),
    ("demo", "soak"),
    # "defs" is the folder itself: its resources.py binds what every domain shares.
    ("defs", *(f"defs.{domain}" for domain in DOMAINS)),
    ("defs.alerts",),  # the shared alert service, used by domains that raise alerts
    ("platform", "api"),   # the HTTP API is its own process: no Dagster, no domain
    ("core", "console"),
    ("",),  # the package root: its __init__ holds only the version
)

CORE_MAY_IMPORT = {"psycopg2", PACKAGE}  # besides the standard library
API_MAY_IMPORT = CORE_MAY_IMPORT | {"starlette", "uvicorn", "prometheus_client"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "__pycache__" not in p.parts}


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``name`` imports, anywhere in the file, as (absolute name, line)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``, mod.
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), node.lineno


@functools.cache
def _package_edges() -> dict[str, dict[str, int]]:
    """Module -> {imported agents_pipeline module: first line}."""
    edges: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        found = edges.setdefault(name, {})
        for target, line in _imports(name, path):
            if (target == PACKAGE or target.startswith(PACKAGE + ".")) and target != name:
                found.setdefault(target, line)
    return edges


def _unit(module: str) -> str:
    relative = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    units = [u for layer in LAYERS for u in layer if relative == u or relative.startswith(u + ".") or u == ""]
    return max(units, key=len)


def _level(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def test_imports_point_down_and_domains_stay_apart() -> None:
    """Guards against an upward import (core or platform using a domain, a domain using the CLI,
    the demo or the definitions) and against one domain reaching into another, inside functions
    too. Lists every offending edge, with the file and line of its first import."""
    bad = []
    for module, targets in _package_edges().items():
        source = _unit(module)
        for target, line in targets.items():
            dest = _unit(target)
            if dest != source and _level(dest) <= _level(source):
                bad.append(f"{module} -> {target}  ({MODULES[module].relative_to(ROOT.parent)}:{line})")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def _cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    """Guards against modules that import each other, the cycle hidden by an import inside a
    function (``migration.runner`` <-> ``migration.parallel`` once was): each works only as long as
    the other happens to be imported first, and neither can be read or tested alone."""
    edges = _package_edges()
    cycles = _cycles(edges)
    assert not cycles, "\n".join(_describe(members, edges) for members in cycles)


def _describe(members: list[str], edges: dict[str, dict[str, int]]) -> str:
    """The shortest way round from the component's first module, then every module in it."""
    inside, start = set(members), members[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(edges[node]):
            if nxt == start:
                loop = " -> ".join([*paths[node], start])
                return f"cycle: {loop}" + (f"  (tangled: {', '.join(members)})" if len(members) > len(paths[node]) else "")
            if nxt in inside and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no way round {members}")  # pragma: no cover - a component always has one


def test_every_import_names_a_module_that_exists() -> None:
    """Guards against an import left pointing at a module that moved (``agents_pipeline.heartbeats``
    became ``agents_pipeline.defs.heartbeats``): inside a function it fails only when that path
    runs, and here it would escape the layer rules too."""
    missing = sorted(f"{module} -> {target}  ({MODULES[module].relative_to(ROOT.parent)}:{line})"
                     for module, targets in _package_edges().items()
                     for target, line in targets.items() if target not in MODULES)
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_every_folder_has_a_layer() -> None:
    """Guards against a new top-level folder or domain landing outside the layer map, where it
    would fall silently into the unit above it (a new ``defs/<domain>`` into ``defs``) and be
    checked by the wrong rules."""
    units = {u for layer in LAYERS for u in layer}
    folders = {d for d in ROOT.iterdir() if d.is_dir() and any(d.rglob("*.py"))}
    folders |= {d for d in (ROOT / "defs").iterdir() if d.is_dir() and any(d.rglob("*.py"))}
    files = {p for p in ROOT.glob("*.py") if p.name != "__init__.py"}
    unmapped = sorted(str(p.relative_to(ROOT.parent)) for p in folders | files
                      if ".".join(p.relative_to(ROOT).with_suffix("").parts) not in units)
    stale = sorted(u for u in units - {""} if not (ROOT.joinpath(*u.split(".")).is_dir()
                                                   or ROOT.joinpath(*u.split(".")).with_suffix(".py").is_file()))
    assert not unmapped, f"no layer in LAYERS for: {unmapped}"
    assert not stale, f"LAYERS names what no longer exists: {stale}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _unit(m) == "core"))
def test_core_imports_only_stdlib_and_psycopg2(module: str) -> None:
    """Guards the agent side against a heavy import (Dagster, SQLAlchemy, pandas, pyarrow,
    LangSmith, psutil) anywhere in core, inside a function too: an agent would pay seconds of
    start-up, or fail where only the agent side is installed. core/test_cli.py checks at run time
    what one heartbeat loads; this reads every line of every core module."""
    outside = sorted({f"{target} (line {line})" for target, line in _imports(module, MODULES[module])
                      if target.split(".")[0] not in CORE_MAY_IMPORT
                      and target.split(".")[0] not in sys.stdlib_module_names})
    assert not outside, f"{module} imports beyond the standard library and psycopg2: {outside}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _unit(m) == "api"))
def test_api_imports_no_dagster_and_no_domain(module: str) -> None:
    """Guards the HTTP API's start-up and its separation: a stateless process behind a load
    balancer must not load Dagster, SQLAlchemy or pandas, nor reach into a domain (the layer rule
    above forbids platform and defs; this forbids the heavy libraries outright)."""
    outside = sorted({f"{target} (line {line})" for target, line in _imports(module, MODULES[module])
                      if target.split(".")[0] not in API_MAY_IMPORT
                      and target.split(".")[0] not in sys.stdlib_module_names})
    assert not outside, f"{module} imports beyond the standard library, psycopg2, Starlette and uvicorn: {outside}"
