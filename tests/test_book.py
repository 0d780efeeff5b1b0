"""The book pipeline: stripped source notebooks, papermill execution (smoke profile),
claims ledger, and the Jupyter Book HTML. The smoke book is executed once per session, its
notebooks in parallel (fixture smoke_run); each notebook's result is its own test. Tests
using that fixture are marked `book` by conftest.py."""
import ast
import json
import os
import signal
import threading
import time
from contextlib import contextmanager
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


def synthetic_notebook(path: Path, *cells: str) -> Path:
    """A tiny papermill notebook: the parameters cell, then `cells`."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "quick"\nn_jobs = 2', metadata={"tags": ["parameters"]}),
        *(nbformat.v4.new_code_cell(c) for c in cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_a_failing_notebook_names_the_cell_and_error(tmp_path):
    src = synthetic_notebook(tmp_path / "07-broken.ipynb", "x = 1", "raise ValueError('bad data layout')")
    with pytest.raises(book.NotebookFailed, match=r"07-broken.ipynb failed in cell \d.*ValueError: bad data layout"):
        book.execute(src, tmp_path / "out.ipynb", {"profile": "smoke"}, tmp_path)


def test_a_parallel_build_names_every_failure_and_finishes_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(book.os, "cpu_count", lambda: 4)      # 2 notebooks at a time -> n_jobs 4 // 2
    nbs = [synthetic_notebook(tmp_path / "01-ok.ipynb", "import os; print(n_jobs, os.environ['OMP_NUM_THREADS'])"),
           synthetic_notebook(tmp_path / "02-broken.ipynb", "raise ValueError('bad data layout')"),
           synthetic_notebook(tmp_path / "03-broken.ipynb", "1 / 0")]
    (tmp_path / "out").mkdir()
    timings, failures = book.execute_all(nbs, tmp_path / "out", {"profile": "smoke"}, jobs=2)
    assert list(timings) == ["01-ok.ipynb"] and list(failures) == ["02-broken.ipynb", "03-broken.ipynb"]
    ok = nbformat.read(tmp_path / "out" / "01-ok.ipynb", as_version=4)
    assert ok.cells[-1].outputs[0].text == "2 2\n"
    with pytest.raises(book.NotebookFailed, match=r"(?s)^2 notebooks failed:\nnotebook 02-broken.ipynb failed in "
                       r"cell \d.*ValueError: bad data layout.*notebook 03-broken.ipynb failed in cell \d.*ZeroDivision"):
        raise book.NotebookFailed(failures)


def test_the_user_s_n_jobs_wins(tmp_path):
    nb = synthetic_notebook(tmp_path / "01-ok.ipynb", "print(n_jobs)")
    (tmp_path / "out").mkdir()
    book.execute_all([nb], tmp_path / "out", {"profile": "smoke", "n_jobs": 3})
    assert nbformat.read(tmp_path / "out" / nb.name, as_version=4).cells[-1].outputs[0].text == "3\n"


def test_a_notebook_over_its_timeout_is_named(tmp_path):
    src = synthetic_notebook(tmp_path / "08-slow.ipynb", "x = 1", "import time; time.sleep(60)")
    t0 = time.monotonic()
    with pytest.raises(book.NotebookFailed, match=r"(?s)08-slow.ipynb exceeded its timeout of 2 s.*time.sleep\(60\)"):
        book.execute(src, tmp_path / "out.ipynb", {"profile": "smoke"}, tmp_path, timeout=2)
    assert time.monotonic() - t0 < 30


@contextmanager
def interrupted_once(path: Path):
    """Within the block, SIGINT to this process (as Ctrl-C would send) once `path` exists."""
    done = threading.Event()

    def interrupt():
        while not done.is_set() and not path.exists():
            time.sleep(0.1)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGINT)
    # Python's own Ctrl-C handler, as in a terminal: an earlier test of the session (a kernel
    # manager, papermill) may have left another handler installed in this process
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        signal.signal(signal.SIGINT, previous)


def is_running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def test_ctrl_c_kills_the_running_kernels_and_their_processes(tmp_path):
    pid = tmp_path / "pid"
    nb = synthetic_notebook(tmp_path / "01-long.ipynb", "import pathlib, subprocess, time\n"
                            f"pathlib.Path({str(pid)!r}).write_text(str(subprocess.Popen(['sleep', '600']).pid))\n"
                            "time.sleep(600)")
    (tmp_path / "out").mkdir()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt), interrupted_once(pid):
        book.execute_all([nb], tmp_path / "out", {"profile": "smoke"})
    assert time.monotonic() - t0 < 60 and not is_running(int(pid.read_text()))


def test_bad_jobs_or_timeout_is_a_one_line_error(capsys):
    assert book.main(["--jobs", "0", "--no-html"]) == 1
    assert book.main(["--timeout", "-1", "--no-html"]) == 1
    assert capsys.readouterr().err.count("jobs must be >= 1 and timeout >= 0") == 2


@pytest.mark.parametrize("path", book.toc_notebooks(), ids=lambda p: p.name)
def test_smoke_notebook_executes_with_parameters(smoke_run, path):
    build_dir, timings, failures = smoke_run
    if path.name in failures:      # names the cell and the error, or the timeout
        pytest.fail(failures[path.name], pytrace=False)
    assert path.name in timings
    out = nbformat.read(build_dir / "src" / "notebooks" / path.name, as_version=4)
    injected = [c for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'profile = "smoke"' in injected[0].source
    errors = [o for c in out.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # the source notebook was not touched
    assert all(c.outputs == [] for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def test_smoke_book_has_timings_figures_claims_and_html(smoke_book):
    build_dir, timings = smoke_book
    assert set(timings) == {p.name for p in NOTEBOOKS}
    assert json.loads((build_dir / "timings.json").read_text())["profile"] == "smoke"
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


def test_every_notebook_declares_its_run_time_per_profile():
    for nb in book.toc_notebooks():
        for profile in ("smoke", "quick"):
            m = book.declared_minutes(nb, profile)
            assert isinstance(m, (int, float)) and m > 0, f"{nb.name}: metadata mmlab.minutes.{profile} missing"


def test_notebooks_start_longest_first_and_undeclared_ones_before_all(tmp_path):
    nbs = [synthetic_notebook(tmp_path / f"0{i}-nb.ipynb", "x = 1") for i in range(4)]
    for nb, minutes in zip(nbs, (2, None, 9, 2)):
        if minutes is not None:
            d = nbformat.read(nb, as_version=4)
            d.metadata["mmlab"] = {"minutes": {"quick": minutes}}
            nbformat.write(d, nb)
    assert [n.name for n in book.start_order(nbs, "quick")] == ["01-nb.ipynb", "02-nb.ipynb", "00-nb.ipynb",
                                                                "03-nb.ipynb"]


def test_a_build_prints_no_kernel_transport_warning(tmp_path, capfd):
    """Kernels talk over IPC sockets: ipykernel's "running over TCP without encryption" warning,
    printed once per notebook, is noise a user cannot act on."""
    nb = synthetic_notebook(tmp_path / "01-ok.ipynb", "print('hi')")
    (tmp_path / "out").mkdir()
    timings, failures = book.execute_all([nb], tmp_path / "out", {"profile": "smoke"})
    out, err = capfd.readouterr()
    assert not failures and "TCP" not in out + err and "Unable to parse" not in out + err


def test_the_injected_parameters_cell_is_collapsed(tmp_path):
    nb = synthetic_notebook(tmp_path / "01-ok.ipynb", "print(profile)")
    book.execute(nb, tmp_path / "out.ipynb", {"profile": "smoke"}, tmp_path)
    cells = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
    injected = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "hide-cell" in injected[0].metadata.tags
    assert cells[-1].outputs[0].text == "smoke\n"


def test_kernel_logs_go_to_the_build_s_log_directory(tmp_path, capfd):
    nb = synthetic_notebook(tmp_path / "01-ok.ipynb", "import sys; print('cell output'); sys.__stderr__.write('kernel noise\\n')")
    (tmp_path / "out").mkdir()
    timings, failures = book.execute_all([nb], tmp_path / "out", {"profile": "smoke"}, log_dir=tmp_path / "logs")
    out, err = capfd.readouterr()
    assert not failures and "kernel noise" not in out + err
    assert "kernel noise" in (tmp_path / "logs" / "01-ok.kernel.log").read_text()
    assert nbformat.read(tmp_path / "out" / nb.name, as_version=4).cells[-1].outputs[0].text == "cell output\n"
