"""Build the book: execute the notebooks with papermill, then Jupyter Book 1.x to HTML.

    python -m mmlab.book --profile quick              # what `make book` runs
    python -m mmlab.book --profile smoke --nb notebooks/01-modality-imbalance.ipynb
    python -m mmlab.book -p seeds "[0, 1]" -p device cpu

Source notebooks in notebooks/ are never written to: each is executed into
_build/src/notebooks/ (a staging copy of the book with _config.yml, _toc.yml and book/),
and Jupyter Book renders that copy with its own execution off. Results come from
mmlab.run's cache, so a second build re-executes quickly. Figures go to
_build/src/figures/<notebook>/, claims ledgers to _build/claims/, timings to
_build/timings.json. The notebooks run in parallel (--jobs, default one per core), each
in its own kernel and within a time limit (--timeout, default per profile: TIMEOUTS),
started longest-first by the run time each declares in its metadata (`start_order`). A
failing notebook fails the build naming the notebook, the cell and the error; the others
still finish, and every failure is named. Ctrl-C kills the running notebooks' kernels.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from pathlib import Path

import yaml

from mmlab.configs import PROFILES
from mmlab.utils import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
TIMEOUTS = {"smoke": 900, "quick": 3600, "full": None}    # seconds per notebook (None: no limit)


class NotebookFailed(RuntimeError):
    """Notebooks failed; `failures` maps each one's name to what went wrong (cell and error, or timeout)."""

    def __init__(self, failures: dict):
        self.failures = dict(failures)
        head = [f"{len(failures)} notebooks failed:"] if len(failures) > 1 else []
        super().__init__("\n".join(head + list(failures.values())))


def toc_files(toc_path: Path) -> list:
    """Every file named in a Jupyter Book _toc.yml, in reading order (no suffix)."""
    toc = yaml.safe_load(toc_path.read_text())
    out = [toc["root"]]

    def walk(node):
        for key in ("chapters", "sections"):
            for item in node.get(key, []) or []:
                if "file" in item:
                    out.append(item["file"])
                walk(item)
        for part in node.get("parts", []) or []:
            walk(part)
    walk(toc)
    return out


def toc_notebooks(root: Path = ROOT) -> list:
    return [root / f"{f}.ipynb" for f in toc_files(root / "_toc.yml") if (root / f"{f}.ipynb").exists()]


def declared_minutes(nb: Path, profile: str):
    """A notebook's expected wall minutes in `profile` on an empty cache, 2-core CPU, as its
    metadata declares them (`"mmlab": {"minutes": {"smoke": 1, "quick": 17}}`), or None."""
    import nbformat
    return nbformat.read(nb, as_version=4).metadata.get("mmlab", {}).get("minutes", {}).get(profile)


def start_order(notebooks: list, profile: str) -> list:
    """The order in which to start `notebooks`: longest declared run time first (an undeclared
    one, a new chapter, before all), ties in toc order. With one notebook per core at a time,
    longest-first keeps a long chapter from starting last and running alone."""
    minutes = {nb: declared_minutes(nb, profile) for nb in notebooks}
    return sorted(notebooks, key=lambda nb: -(minutes[nb] if minutes[nb] is not None else float("inf")))


class _Deadline:
    """nbclient's timeout_func: every cell may run until `seconds` after the first cell started
    (the kernel's start-up has papermill's own limit)."""

    def __init__(self, seconds: float):
        self.seconds, self.end, self.cell = seconds, None, None

    def __call__(self, cell) -> float:
        self.end = self.end or time.monotonic() + self.seconds
        self.cell = cell
        return max(self.end - time.monotonic(), 1e-3)


def execute(nb: Path, out: Path, parameters: dict, cwd: Path, timeout: float | None = None,
            kernel_manager_class=None) -> float:
    """Run one notebook with papermill (at most `timeout` seconds); raise NotebookFailed naming
    the cell and the error, or the timeout."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError
    deadline = _Deadline(timeout) if timeout else None
    t0 = time.perf_counter()
    try:      # the kernel's cwd through nbclient's resources: papermill's own cwd= is a process-wide chdir
        pm.execute_notebook(str(nb), str(out), parameters=parameters, progress_bar=False, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}, timeout_func=deadline,
                            kernel_manager_class=kernel_manager_class or ipc_kernel_manager())
    except PapermillExecutionError as e:
        src = "\n    ".join(str(e.source).splitlines()[:12])
        raise NotebookFailed({nb.name: f"notebook {nb.name} failed in cell {e.cell_index} "
                              f"(execution count {e.exec_count}): {e.ename}: {e.evalue}\n"
                              f"  cell source:\n    {src}\n  executed copy with the traceback: {out}"}) from None
    except CellTimeoutError:
        src = "\n    ".join(deadline.cell.source.splitlines()[:12])
        raise NotebookFailed({nb.name: f"notebook {nb.name} exceeded its timeout of {timeout:g} s (--timeout) "
                              f"in the cell:\n    {src}\n  executed copy up to there: {out}"}) from None
    collapse_injected_parameters(out)
    return time.perf_counter() - t0


def collapse_injected_parameters(path: Path) -> None:
    """Tag the cell papermill injected (the build's parameter values) `hide-cell`, so the
    HTML page shows it collapsed like the parameters cell it overrides."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        tags = c.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
    nbformat.write(nb, path)


def _execute_logged(nb: Path, out: Path, parameters: dict, cwd: Path, timeout, kernel_manager_class) -> float:
    """execute() with progress lines; any other error (a dead kernel, a bad parameter) names the notebook too."""
    # each line one write (print's text and newline are two: parallel notebooks would interleave them)
    print(f"executing {nb.name} (profile {parameters.get('profile')}) ...\n", end="", flush=True)
    try:
        seconds = execute(nb, out, parameters, cwd, timeout, kernel_manager_class)
    except NotebookFailed:
        print(f"  {nb.name}: FAILED\n", end="", flush=True)
        raise
    except Exception as e:
        print(f"  {nb.name}: FAILED\n", end="", flush=True)
        raise NotebookFailed({nb.name: f"notebook {nb.name} failed: {type(e).__name__}: {e}"}) from e
    print(f"  {nb.name}: {seconds:.1f} s\n", end="", flush=True)
    return seconds


@contextmanager
def _env_default(name: str, value: str):
    """os.environ[name] = value within the block (kernels started there inherit it), unless already set."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def ipc_kernel_manager(stderr_path: Path | None = None):
    """jupyter_client's AsyncKernelManager talking to its kernel over local IPC sockets instead
    of TCP on 127.0.0.1 (which ipykernel 7 warns about at every start: "Kernel is running over
    TCP without encryption"); a build's kernels are always local. The sockets are files named
    by an absolute prefix in Jupyter's runtime directory (a relative one would resolve against
    two working directories: the build's and the kernel's). With `stderr_path`, the kernel
    process's own stderr (its application log, not the cells' output, which reaches the
    notebook) is appended to that file instead of the build's console."""
    import uuid
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            kw.setdefault("transport", "ipc")
            Path(jupyter_runtime_dir()).mkdir(parents=True, exist_ok=True)
            kw.setdefault("ip", str(Path(jupyter_runtime_dir()) / f"mmlab-{uuid.uuid4().hex[:12]}"))
            super().__init__(**kw)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            if stderr_path is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            stderr_path.parent.mkdir(parents=True, exist_ok=True)
            with open(stderr_path, "ab") as f:          # the kernel process keeps its own descriptor
                return await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": f})
    return IPCKernelManager


class _Kernels:
    """The kernel managers of a build (nbclient's kernel_manager_class records them), so that
    Ctrl-C can kill each kernel's process group: the kernel and its training processes. Kernels
    run in their own sessions, which the terminal's SIGINT does not reach."""

    def __init__(self):
        self.managers = []

    def manager_class(self, stderr_path: Path | None = None):
        """A kernel manager class that records its instances (kernel stderr to `stderr_path`)."""
        managers = self.managers

        class Recorded(ipc_kernel_manager(stderr_path)):
            def __init__(self, **kw):
                super().__init__(**kw)
                managers.append(self)
        return Recorded

    def kill(self) -> None:
        for km in self.managers:
            pgid = getattr(km.provisioner, "pgid", None)     # None before start and after shutdown
            if pgid:
                with suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)


def _wait_or_kill(pool: ThreadPoolExecutor, futures: list, kernels: _Kernels) -> None:
    """Wait for the notebooks; on Ctrl-C start no other and kill the running ones' kernels."""
    try:
        wait(futures)
    except KeyboardInterrupt:
        print("interrupted: killing the running notebooks' kernels", file=sys.stderr, flush=True)
        pool.shutdown(wait=False, cancel_futures=True)
        started = [f for f in futures if not f.cancelled()]
        kernels.kill()
        while wait(started, timeout=1).not_done:       # a kernel that was still starting up
            kernels.kill()
        raise


def execute_all(notebooks: list, out_dir: Path, parameters: dict, jobs: int | None = None,
                timeout: float | None = None, log_dir: Path | None = None) -> tuple:
    """Execute `notebooks` into out_dir, `jobs` at a time (default: one per core), each kernel
    given n_jobs = cores // jobs training processes (unless `parameters` set n_jobs) and as many
    threads; with `log_dir`, each kernel's own stderr goes to log_dir/<notebook>.kernel.log.
    Returns ({name: seconds}, {name: failure message}), in the order of `notebooks`."""
    cores = os.cpu_count() or 1
    jobs = max(1, min(jobs or cores, len(notebooks)))
    per = max(1, cores // jobs)
    parameters, kernels = {"n_jobs": per, **parameters}, _Kernels()
    with _env_default("OMP_NUM_THREADS", str(per)), ThreadPoolExecutor(jobs) as pool:
        futures = {nb.name: pool.submit(_execute_logged, nb, out_dir / nb.name, parameters, out_dir, timeout,
                                        kernels.manager_class(log_dir and log_dir / f"{nb.stem}.kernel.log"))
                   for nb in notebooks}
        _wait_or_kill(pool, list(futures.values()), kernels)
    timings, failures = {}, {}
    for name, f in futures.items():
        try:
            timings[name] = f.result()
        except NotebookFailed as e:
            failures.update(e.failures)
    return timings, failures


def stage(build: Path) -> Path:
    """Copy the book's sources (config, toc, markdown chapters) into build/src, and
    book/_static (the book's CSS) to build/src/_static, where Jupyter Book 1.x picks it up."""
    src = build / "src"
    (src / "notebooks").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "book", src / "book", dirs_exist_ok=True, ignore=shutil.ignore_patterns("_static"))
    if (ROOT / "book" / "_static").is_dir():   # Jupyter Book 1.x adds <book root>/_static/*.css to every page
        shutil.copytree(ROOT / "book" / "_static", src / "_static", dirs_exist_ok=True)
    return src


def render_ledger_markdown(df, profile: str = "", left_out: int = 0, untested: int = 0, titles=None) -> str:
    """The claims page (MyST): mmlab.report.claims_page, i.e. the rule (collapsed), the verdict
    counts as badges, and per paper and artifact a collapsed group of claims with a stable id."""
    from mmlab.report import claims_page
    return claims_page(df, profile, left_out, untested, titles)


def write_claims_page(build: Path, src: Path, profile: str = "") -> None:
    """book/claims.md in the staging copy, generated from the ledgers of this build's profile
    (each chapter linked by the first heading of its source notebook)."""
    from mmlab.report import load_build, notebook_title
    found = load_build(build / "claims", profile)
    titles = {nb: notebook_title(ROOT / "notebooks" / f"{nb}.ipynb") for nb in set(found.claims["notebook"])}
    (src / "book" / "claims.md").write_text(
        render_ledger_markdown(found.claims, profile, found.left_out, found.untested, titles))


def write_intro_page(build: Path, src: Path, profile: str = "") -> None:
    """book/intro.md in the staging copy with its markers filled (mmlab.report.render_intro):
    the smoke banner, the reproducibility scoreboard and standings, the chapter list."""
    from mmlab.report import load_build, render_intro
    page = src / "book" / "intro.md"
    page.write_text(render_intro(page.read_text(), load_build(build / "claims", profile), profile, ROOT))


def build_html(src: Path, build: Path) -> Path:
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(src),
           "--path-output", str(build.parent), "--builder", "html"]
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "jupyter_book"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return build / "html"


def _chosen(notebooks) -> tuple:
    """(every notebook of the toc, the ones to execute: `notebooks` or all)."""
    all_nbs = toc_notebooks()
    chosen = [Path(n).resolve() for n in notebooks] if notebooks else all_nbs
    for nb in chosen:
        if nb not in all_nbs:
            raise ValueError(f"{nb} is not listed in _toc.yml; listed: {[n.name for n in all_nbs]}")
    return all_nbs, chosen


def build(profile: str = "quick", notebooks=None, params=None, build_dir: Path = ROOT / "_build",
          html: bool = True, jobs: int | None = None, timeout: float | None = None) -> dict:
    """Execute the toc's notebooks (or only `notebooks`), `jobs` at a time, each within `timeout`
    seconds (None: the profile's TIMEOUTS; 0: no limit), and build the HTML; returns timings.
    Raises NotebookFailed naming every failed notebook once all have finished."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {PROFILES}")
    if (jobs is not None and jobs < 1) or (timeout is not None and timeout < 0):
        raise ValueError(f"jobs must be >= 1 and timeout >= 0 (0: no limit); got jobs={jobs}, timeout={timeout}")
    build_dir = Path(build_dir).resolve()
    src = stage(build_dir)
    os.environ["MMLAB_FIGURES"] = str(src / "figures")
    os.environ["MMLAB_CLAIMS"] = str(build_dir / "claims")
    if not notebooks:      # a full build: no ledger of an earlier build (or profile) survives
        shutil.rmtree(build_dir / "claims", ignore_errors=True)
    os.environ["MMLAB_PROFILE"] = profile
    all_nbs, chosen = _chosen(notebooks)
    for nb in set(all_nbs) - set(chosen):
        if not (src / "notebooks" / nb.name).exists():   # not run this time and never run: render as is
            shutil.copy2(nb, src / "notebooks" / nb.name)
    timeout = TIMEOUTS[profile] if timeout is None else timeout
    t0 = time.perf_counter()
    timings, failures = execute_all(start_order(chosen, profile), src / "notebooks",
                                    {"profile": profile, **(params or {})}, jobs, timeout, build_dir / "logs")
    wall = time.perf_counter() - t0
    timings = {nb.name: timings[nb.name] for nb in chosen if nb.name in timings}      # toc order
    atomic_write_json({"profile": profile, "seconds": timings, "failed": list(failures), "wall_seconds": wall},
                      build_dir / "timings.json")
    if failures:
        raise NotebookFailed(failures)
    write_claims_page(build_dir, src, profile)
    write_intro_page(build_dir, src, profile)
    if html:
        path = build_html(src, build_dir)
        print(f"HTML book: {path / 'index.html'}")
    for name, s in timings.items():
        print(f"  {s:8.1f} s  {name}")
    print(f"  {sum(timings.values()):8.1f} s  total ({wall:.1f} s of wall time, the notebooks in parallel)")
    return timings


def _param(text: str):
    return yaml.safe_load(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmlab.book")
    p.add_argument("--profile", default=os.environ.get("PROFILE", "quick"), choices=PROFILES)
    p.add_argument("--nb", action="append", help="execute only this notebook (repeatable)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="papermill parameter passed to every executed notebook (YAML value)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="notebooks executed at a time (default: one per core, at most the number of notebooks)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help=f"time limit per notebook, 0 for none (default per profile: {TIMEOUTS})")
    p.add_argument("--build-dir", default=str(ROOT / "_build"))
    p.add_argument("--no-html", action="store_true")
    a = p.parse_args(argv)
    try:
        build(a.profile, a.nb, {k: _param(v) for k, v in a.param}, Path(a.build_dir), html=not a.no_html,
              jobs=a.jobs, timeout=a.timeout)
    except (NotebookFailed, RuntimeError, ValueError) as e:
        print(f"book build failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
