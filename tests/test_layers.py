"""The architecture as a test: every import (absolute, relative, inside functions) points down the layers, and no
two modules import each other, however indirectly (docs/architecture.md draws the same picture)."""
import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[1]
# Lowest first. A module may import its own package and anything on a lower layer, never a higher or equal one.
LAYERS = [
    ['common'],
    ['temporal_transforms'],
    ['spatial_transforms'],
    ['preprocessing'],
    ['models', 'distributed'],
    ['datasets'],
    ['conversion', 'evaluation'],
    ['runs', 'visuals'],
    ['streams'],
    ['training'],
    ['validation'],
    ['inference', 'opts'],
    ['demo'],
    ['main'],
    ['util_scripts'],
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def modules() -> Dict[str, Path]:
    """Dotted name -> file of every library module (tests and benchmarks left out)."""
    found = {}
    for path in ROOT.rglob('*.py'):
        parts = path.relative_to(ROOT).with_suffix('').parts
        if parts[0] in ('tests', 'bench') or any(p.startswith('.') for p in parts):
            continue
        found['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return found


def imports(name: str, path: Path, known: Set[str]) -> Set[str]:
    """The library modules ``name`` imports anywhere in its file (``from pkg import mod`` counts as ``pkg.mod``)."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split('.') if package else []
            if node.level:
                base = base[:len(base) - node.level + 1]
                stem = '.'.join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ''
            targets = [stem] + [f'{stem}.{alias.name}' for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition('.')[0]
            if target and target != name and not name.startswith(target + '.'):
                out.add(target)
    return out


def graph() -> Dict[str, Set[str]]:
    """Module -> the modules it imports."""
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_top_level_name_has_a_layer():
    assert {name.split('.')[0] for name in modules()} <= set(LAYER)


def test_imports_point_down():
    upward = [f'{a} -> {b}' for a, targets in graph().items() for b in targets
              if a.split('.')[0] != b.split('.')[0] and LAYER[b.split('.')[0]] >= LAYER[a.split('.')[0]]]
    assert not upward, upward


def test_no_import_circles():
    edges = graph()
    circles: List[List[str]] = []
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, [' -> '.join(c) for c in circles[:5]]


def test_the_check_finds_a_circle(tmp_path):
    """The analysis itself: a relative import inside a function is an edge."""
    (tmp_path / 'pkg').mkdir()
    (tmp_path / 'pkg' / '__init__.py').write_text('')
    (tmp_path / 'pkg' / 'a.py').write_text('def f():\n    from .b import g\n')
    (tmp_path / 'pkg' / 'b.py').write_text('from pkg import a\n')
    known = {'pkg', 'pkg.a', 'pkg.b'}
    assert imports('pkg.a', tmp_path / 'pkg' / 'a.py', known) == {'pkg.b'}
    assert imports('pkg.b', tmp_path / 'pkg' / 'b.py', known) == {'pkg.a'}


def test_common_needs_the_standard_library_only():
    """common/ runs anywhere Python does; tqdm is the one optional nicety (a bar when stderr is a terminal)."""
    import sys
    allowed = set(sys.stdlib_module_names) | {'common', 'tqdm'}
    found = set()
    for path in (ROOT / 'common').glob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found.add((node.module or '').split('.')[0])
    assert found and found <= allowed, sorted(found - allowed)
