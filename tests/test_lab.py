"""`make lab`'s kernel: registered into a temporary Jupyter path, it executes a notebook with
this interpreter and this checkout's mmlab (the interactive path of the book)."""
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from mmlab import lab


def test_the_mmlab_kernel_runs_a_notebook_with_this_environment(tmp_path, monkeypatch):
    spec_dir = lab.install_kernel(prefix=str(tmp_path / "prefix"))
    assert spec_dir.name == "mmlab" and (spec_dir / "kernel.json").exists()
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "prefix" / "share" / "jupyter"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys, mmlab\nfrom mmlab.notebook import Chapter\nprint(sys.executable)\nprint(mmlab.__file__)")])
    nb.metadata["kernelspec"] = {"name": "mmlab", "display_name": lab.DISPLAY_NAME, "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="mmlab", resources={"metadata": {"path": str(tmp_path)}}).execute()
    exe, module = nb.cells[0].outputs[0].text.splitlines()
    assert Path(exe).resolve() == Path(sys.executable).resolve()
    assert Path(module).resolve().parent == Path(lab.__file__).resolve().parent


def test_make_lab_uses_it():
    assert "-m mmlab.lab" in (Path(lab.ROOT) / "Makefile").read_text()

