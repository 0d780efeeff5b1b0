"""The book pipeline: stripped source notebooks, papermill execution (smoke profile),
claims ledger, and the Jupyter Book HTML. The smoke book is built once per session."""
import ast
import json
from pathlib import Path

import nbformat
import pytest

from mmlab import book
from mmlab.claims import VERDICTS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ALLOWED_IMPORTS = {"mmlab", "pandas", "IPython"}     # notebooks only call mmlab (+ display)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_source_notebook_is_stripped_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    assert 'profile = "quick"' in code[0].source
    for c in code:
        assert c.outputs == [] and c.execution_count is None, f"{path.name}: committed with outputs"
        for node in ast.walk(ast.parse(c.source)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert all(m.split(".")[0] in ALLOWED_IMPORTS for m in mods), f"{path.name} imports {mods}"
    assert nb.cells[0].cell_type == "markdown", "a prose introduction comes first"


def test_every_notebook_is_in_the_toc_in_order():
    listed = [p.name for p in book.toc_notebooks()]
    assert listed == [p.name for p in NOTEBOOKS]


def test_a_failing_notebook_names_the_cell_and_error(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "quick"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('bad data layout')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "07-broken.ipynb"
    nbformat.write(nb, src)
    with pytest.raises(book.NotebookFailed, match=r"07-broken.ipynb failed in cell \d.*ValueError: bad data layout"):
        book.execute(src, tmp_path / "out.ipynb", {"profile": "smoke"}, tmp_path)


def test_smoke_book_executes_every_notebook_with_parameters(smoke_book):
    build_dir, timings = smoke_book
    assert set(timings) == {p.name for p in NOTEBOOKS}
    for p in NOTEBOOKS:
        out = nbformat.read(build_dir / "src" / "notebooks" / p.name, as_version=4)
        injected = [c for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and 'profile = "smoke"' in injected[0].source
        errors = [o for c in out.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors
        assert (build_dir / "src" / "figures").exists()
    assert json.loads((build_dir / "timings.json").read_text())["profile"] == "smoke"
    # the source notebooks were not touched
    for p in NOTEBOOKS:
        assert all(c.outputs == [] for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code")


def test_smoke_book_has_figures_claims_and_html(smoke_book):
    build_dir, _ = smoke_book
    figs = {p.parent.name for p in (build_dir / "src" / "figures").rglob("*.png") if p.stat().st_size > 0}
    assert {"00-benchmarks", "01-modality-imbalance", "40-reconboost-accuracy", "41-reconboost-encoders",
            "42-reconboost-robustness", "43-reconboost-ablations"} <= figs
    for name, n_min in (("01-modality-imbalance", 10), ("40-reconboost-accuracy", 40), ("41-reconboost-encoders", 12),
                        ("42-reconboost-robustness", 12), ("43-reconboost-ablations", 12)):
        claims = json.loads((build_dir / "claims" / f"{name}.json").read_text())
        assert len(claims["claims"]) >= n_min, name
        assert claims["profile"] == "smoke" and all(c["reported"] for c in claims["claims"]), name
        if name.startswith("4"):       # every ReconBoost verdict names its protocol, and both are there
            assert {c["protocol"] for c in claims["claims"]} == {"equal budget", "paper recipe"}, name
    html = build_dir / "html"
    assert (html / "index.html").exists()
    for p in NOTEBOOKS:
        assert (html / "notebooks" / f"{p.stem}.html").exists()
    cells = verdict_cells((html / "book" / "claims.html").read_text())
    assert len(cells) >= 48 and set(cells) <= set(VERDICTS), cells[:5]   # the verdict column, not the rule


def verdict_cells(page: str) -> list:
    """Texts of the 'verdict' column of every table in an HTML page."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                self.rows[-1].append(self.cell.strip())
                self.cell = None
    t = Tables()
    t.feed(page)
    out, col = [], None
    for row in t.rows:
        if "verdict" in row:
            col = row.index("verdict")
        elif col is not None and len(row) > col:
            out.append(row[col])
    return out


def test_verdict_cells_are_read_from_the_table_not_the_rule():
    page = ("<p>reproduced, not reproduced, inconclusive</p><table><tr><th>claim</th><th>verdict</th></tr>"
            "<tr><td>x</td><td><strong>reproduced</strong></td></tr></table>")
    assert verdict_cells(page) == ["reproduced"]
    assert verdict_cells("<p>reproduced</p>") == []
