"""Style of the book's notebooks: a chapter is a few lines per paper artifact that call the
library, so cells can be rerun in any order without silently using another cell's data.

Every code cell: no function definitions (`def`, `lambda`: they belong in mmlab), lines of at
most 100 characters, and no module-level name assigned in two different code cells (the
parameters cell included: a cell that rebinds `df` would make an earlier table depend on
which cells ran last)."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MAX_LINE = 100


def _code_cells(path):
    nb = nbformat.read(path, as_version=4)
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def _targets(node) -> set:
    """Names bound by an assignment target (Name, tuple / list / starred of names)."""
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, (ast.Tuple, ast.List)):
        return set().union(*(_targets(e) for e in node.elts)) if node.elts else set()
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    return set()          # subscripts / attributes mutate an object, they bind no name


def module_level_names(tree: ast.Module) -> set:
    """Names a cell binds at module level: assignments, augmented / annotated assignments,
    `for` targets and `with ... as` targets, in top-level statements and in the bodies of
    top-level compound statements (if / for / while / with / try); comprehension variables
    are scoped to the comprehension and do not count."""
    names, todo = set(), list(tree.body)
    while todo:
        s = todo.pop()
        if isinstance(s, ast.Assign):
            for t in s.targets:
                names |= _targets(t)
        elif isinstance(s, (ast.AugAssign, ast.AnnAssign)):
            names |= _targets(s.target)
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            names |= _targets(s.target)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                if item.optional_vars is not None:
                    names |= _targets(item.optional_vars)
        if isinstance(s, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)):
            for field in ("body", "orelse", "finalbody"):
                todo += getattr(s, field, [])
            for h in getattr(s, "handlers", []):
                todo += h.body
    # walrus assignments anywhere outside comprehensions also bind module-level names
    names |= {n.target.id for n in ast.walk(tree) if isinstance(n, ast.NamedExpr)}
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_functions_in_notebooks(path):
    bad = [(i, type(n).__name__) for i, c in _code_cells(path) for n in ast.walk(ast.parse(c.source))
           if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))]
    assert not bad, f"{path.name}: functions defined in cells (move them to mmlab): {bad}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_lines_at_most_100(path):
    long = [(i, len(line)) for i, c in _code_cells(path) for line in c.source.splitlines() if len(line) > MAX_LINE]
    assert not long, f"{path.name}: (cell, length) of code lines over {MAX_LINE} characters: {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_name_bound_in_two_cells(path):
    first, twice = {}, []
    for i, c in _code_cells(path):
        for name in sorted(module_level_names(ast.parse(c.source))):
            if name in first:
                twice.append((name, first[name], i))
            else:
                first[name] = i
    assert not twice, f"{path.name}: (name, first cell, later cell) bound in two cells: {twice}"


def test_checker_sees_loops_and_tuples():
    tree = ast.parse("a, (b, *c) = x\nfor i, j in y:\n    if i:\n        k = 1\nd[0] = 2\n"
                     "z = [w for w in v]\nwith open(f) as fh:\n    pass\nq += 1\n")
    assert module_level_names(tree) == {"a", "b", "c", "i", "j", "k", "z", "fh", "q"}


HIDING_TAGS = {"hide-input", "remove-input", "hide-cell", "remove-cell"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_is_collapsed_in_the_html_and_captions_come_from_the_library(path):
    """Readers see outputs; the code of every cell is one click away (Jupyter Book's tags), and
    a figure's caption is shown by Chapter.figure (a mystnb caption would label every output
    of its cell, tables included)."""
    for i, c in _code_cells(path):
        assert HIDING_TAGS & set(c.metadata.get("tags", [])), f"{path.name} cell {i}: no hide-input tag"
        assert "mystnb" not in c.metadata, f"{path.name} cell {i}: mystnb metadata (use ch.figure's caption)"
        assert "save_figure" not in c.source, f"{path.name} cell {i}: use ch.figure(fig, name, caption)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter(path, caplog):
    """papermill's parser skips (with an "Unable to parse line" warning) an assignment whose
    comment holds "=": such a parameter disappears from `papermill --help-notebook`."""
    import logging
    import papermill as pm
    cell = next(c for _, c in _code_cells(path) if "parameters" in c.metadata.get("tags", []))
    assigned = {t.id for n in ast.parse(cell.source).body if isinstance(n, ast.Assign) for t in n.targets}
    with caplog.at_level(logging.WARNING):
        params = pm.inspect_notebook(str(path))
    assert set(params) == assigned and not [r for r in caplog.records if "Unable to parse" in r.getMessage()]
