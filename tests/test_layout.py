"""The layout holds: one top-level package, a core both pipelines stand on, a sandbox the product never
imports, and no import cycles. Read from the source (ast), so lazy imports inside functions count too."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "inferwatch"

# area -> areas it must never import ("cli" is the top: it may import everything)
FORBIDDEN = {
    "core": {"generate", "diagnose", "sandbox", "cli"},
    "generate": {"diagnose", "sandbox", "cli"},
    "diagnose": {"generate", "sandbox", "cli"},
    "sandbox": {"cli"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Absolute names of the inferwatch modules a file imports (`from . import x` resolved to modules)."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}  # annotations, never executed
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("inferwatch")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("inferwatch"):
                continue
            for a in node.names:  # `from pkg import module` names a module; otherwise the target itself
                candidate = f"{target}.{a.name}"
                found.add(candidate if _exists(candidate) else target)
    return found


def _exists(name: str) -> bool:
    p = ROOT.joinpath(*name.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def area(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "inferwatch"


def graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        src = module_name(path)
        g.add_node(src)
        for dst in imports(path):
            if dst != src:
                g.add_edge(src, dst)
    return g


def test_only_one_top_level_package():
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))
    assert packages == ["bench", "inferwatch"], packages  # bench is a folder of scripts, not shipped
    assert "inferwatch*" in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer):
    g = graph()
    bad = sorted(f"{a} -> {b}" for a, b in g.edges if area(a) == layer and area(b) in FORBIDDEN[layer])
    assert not bad, f"{layer} must not import {', '.join(sorted(FORBIDDEN[layer]))}:\n" + "\n".join(bad)


def test_no_import_cycles():
    g = graph()
    # a package's __init__ importing its own modules is not a cycle of ideas
    g.remove_edges_from([(a, b) for a, b in g.edges if b.startswith(a + ".")])
    cycles = list(nx.simple_cycles(g))
    assert not cycles, cycles


def test_the_import_graph_sees_lazy_imports(tmp_path):
    """The checker itself: an import inside a function is found (it would hide a cycle otherwise)."""
    cli = imports(PACKAGE / "cli.py")
    assert "inferwatch.sandbox.demo" in cli  # imported inside cmd_demo only
