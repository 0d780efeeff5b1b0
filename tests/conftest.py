import json
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _mmlab_cache(tmp_path_factory):
    """Tests never touch the user's cache: one session-wide cache dir unless CI set one."""
    if "MMLAB_CACHE" not in os.environ:
        os.environ["MMLAB_CACHE"] = str(tmp_path_factory.mktemp("mmlab-cache"))
    yield


@pytest.fixture
def run_cache(tmp_path, monkeypatch):
    """A private cache dir for tests that count cache hits and misses."""
    monkeypatch.setenv("MMLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Small models on 2 shared cores run far faster single-threaded (no oversubscription)."""
    import torch
    from threadpoolctl import threadpool_limits
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


@pytest.hookimpl(tryfirst=True)      # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    """Every test that needs the executed smoke book (fixture smoke_run, directly or through
    smoke_book) is marked `book`: `pytest -m "not book"` runs the rest in minutes."""
    for item in items:
        if "smoke_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.book)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The whole book executed once in the smoke profile, its notebooks in parallel (one per
    core, each within the profile's timeout), and rendered to HTML if all passed:
    (build_dir, seconds per executed notebook, failure message per failed notebook).
    MMLAB_SMOKE_BUILD=<a smoke build's _build> reuses that build instead (to iterate on the
    HTML tests; CI never sets it)."""
    from mmlab import book
    if os.environ.get("MMLAB_SMOKE_BUILD"):      # iterate on the HTML tests over an existing smoke build
        build_dir = Path(os.environ["MMLAB_SMOKE_BUILD"]).resolve()
        timings = json.loads((build_dir / "timings.json").read_text())
        return build_dir, timings["seconds"], {n: f"{n} failed in that build" for n in timings["failed"]}
    build_dir = tmp_path_factory.mktemp("book") / "_build"
    try:
        return build_dir, book.build("smoke", build_dir=build_dir), {}
    except book.NotebookFailed as e:
        return build_dir, json.loads((build_dir / "timings.json").read_text())["seconds"], e.failures


@pytest.fixture(scope="session")
def smoke_book(smoke_run):
    """(build_dir, timings) of the smoke book for the tests of its HTML; errors naming the
    failed notebooks when there is none."""
    build_dir, timings, failures = smoke_run
    if failures:
        pytest.fail("the smoke book was not rendered; its failed notebooks:\n" + "\n".join(failures.values()),
                    pytrace=False)
    return build_dir, timings
