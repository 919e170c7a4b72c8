"""The package's layers (docs/architecture.md): each imports only the layers below it.

Read from the source with ``ast`` (imports inside functions included), so a lazy import that
dodges a cycle at run time is still caught.
"""
import ast
import os.path as osp
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / 'xpaste'

# Subpackage -> the xpaste subpackages it may import (besides itself). Third-party packages a
# layer must not know are listed in FORBIDDEN_THIRD_PARTY.
ALLOWED = {
    'utils': set(),
    'bank': {'utils', 'version'},
    'toy': {'utils', 'version'},
    'builder': {'bank', 'toy', 'utils', 'version'},
    'models': {'bank', 'utils', 'version'},
    'datasets': {'bank', 'utils', 'version'},
    'testing': {'bank', 'builder', 'datasets', 'models', 'toy', 'utils', 'version'},
}
FORBIDDEN_THIRD_PARTY = {
    'bank': {'mmdet', 'mmcv', 'torch', 'diffusers', 'open_clip', 'transformers'},
    'builder': {'mmdet'},
    'toy': {'mmdet', 'mmcv'},
}
# The one exception: the segmenter that runs an MMDetection model loads mmdet's inference API
# lazily, inside its methods (a build without it never imports mmdet); a module-level import
# there is still forbidden.
LAZY_ONLY = {'builder/segmenters/detector.py': {'mmdet'}}


def _imports(path: Path, root: Path = ROOT) -> set:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = '.'.join(path.relative_to(root.parent).with_suffix('').parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
    return names


def _module_level_imports(path: Path) -> set:
    """Top-level package names imported at module level in ``path`` (not in a function)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split('.')[0])
    return names


def _layer_files():
    for path in sorted(ROOT.rglob('*.py')):
        rel = path.relative_to(ROOT)
        if len(rel.parts) > 1:
            yield rel.parts[0], path


def test_every_subpackage_has_a_rule():
    subpackages = {p.name for p in ROOT.iterdir() if (p / '__init__.py').exists()}
    assert subpackages <= set(ALLOWED), sorted(subpackages - set(ALLOWED))


@pytest.mark.parametrize('layer', sorted(ALLOWED))
def test_layer_imports_only_layers_below(layer):
    bad = []
    for owner, path in _layer_files():
        if owner != layer:
            continue
        for name in _imports(path):
            top, _, rest = name.partition('.')
            if top == 'xpaste':
                sub = rest.split('.')[0]
                if sub and sub != layer and sub not in ALLOWED[layer]:
                    bad.append(f'{osp.relpath(path, ROOT.parent)} imports {name}')
            elif top in FORBIDDEN_THIRD_PARTY.get(layer, ()):
                lazy_ok = LAZY_ONLY.get(path.relative_to(ROOT).as_posix(), set())
                if top not in lazy_ok or top in _module_level_imports(path):
                    bad.append(f'{osp.relpath(path, ROOT.parent)} imports {name}')
    assert not bad, '\n'.join(bad)


def test_lazy_exception_still_catches_a_module_level_import(tmp_path):
    src = tmp_path / 'detector.py'
    src.write_text('import numpy\n\n\ndef setup():\n    from mmdet.apis import init_detector\n')
    assert _module_level_imports(src) == {'numpy'}
    src.write_text('from mmdet.apis import init_detector\n')
    assert _module_level_imports(src) == {'mmdet'}


def test_layer_rules_have_no_cycle():
    # a DFS over ALLOWED: the rules themselves must form a DAG
    state = {}

    def visit(node, trail):
        if state.get(node) == 'done':
            return
        assert state.get(node) != 'open', f'cycle: {" -> ".join(trail + [node])}'
        state[node] = 'open'
        for nxt in ALLOWED.get(node, ()):
            visit(nxt, trail + [node])
        state[node] = 'done'

    for layer in ALLOWED:
        visit(layer, [])


def test_import_parser_sees_relative_and_lazy_imports(tmp_path):
    # the checker itself must see a lazy, relative, upward import
    pkg = tmp_path / 'xpaste' / 'bank'
    pkg.mkdir(parents=True)
    src = pkg / 'mod.py'
    src.write_text('def f():\n    from ..datasets import lvis\n    import mmdet.apis\n')
    assert _imports(src, tmp_path / 'xpaste') == {'xpaste.datasets', 'mmdet.apis'}
