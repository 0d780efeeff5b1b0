import os

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


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """The whole book built once in the smoke profile (papermill + Jupyter Book 1.x);
    shared by the notebook tests and the browser test."""
    from mmlab import book
    build_dir = tmp_path_factory.mktemp("book") / "_build"
    timings = book.build("smoke", build_dir=build_dir, params={"n_jobs": 2})
    return build_dir, timings
