"""The package's shape: no module imports one above it, and modules stay small."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "recbole_unlearn"
# Lowest first. A module may import modules of its own layer or of lower ones, never of a higher one.
LAYERS = [
    (
        "recbole_unlearn.compat",
        "recbole_unlearn.errors",
        "recbole_unlearn.precision",
        "recbole_unlearn.random_state",
        "recbole_unlearn.provenance",
        "recbole_unlearn.distributed",
        "recbole_unlearn.batching",
    ),
    ("recbole_unlearn.checkpoint",),
    ("recbole_unlearn.trainer",),
    ("recbole_unlearn.model",),
    ("recbole_unlearn.unlearn.method",),
    ("recbole_unlearn.config",),
    ("recbole_unlearn.data",),
    ("recbole_unlearn.evaluation",),
    ("recbole_unlearn.unlearn",),
    ("recbole_unlearn.registry",),
    ("recbole_unlearn.quick_start",),
    ("recbole_unlearn.cli",),
    ("recbole_unlearn",),
]
MAX_LINES = 250


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module):
    """The index of the most specific layer prefix that ``module`` falls under."""
    matches = [
        (len(prefix), index)
        for index, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1]


def imported_modules(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("recbole_unlearn"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("recbole_unlearn"):
            # `from recbole_unlearn import distributed` imports the submodule.
            if node.module == "recbole_unlearn":
                yield from (f"recbole_unlearn.{alias.name}" for alias in node.names)
            else:
                yield node.module


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: module_name(path))
def test_no_module_imports_one_above_it(path):
    importer = module_name(path)
    upward = [module for module in imported_modules(path) if layer(module) > layer(importer)]
    assert not upward, f"{importer} (layer {layer(importer)}) imports higher modules {upward}"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: module_name(path))
def test_a_long_module_says_why_in_its_docstring(path):
    lines = len(path.read_text().splitlines())
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert lines <= MAX_LINES or "Longer than" in docstring, f"{path.name}: {lines} lines and no reason given"
