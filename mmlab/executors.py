"""Runs spread over a Dask cluster: `run_many(configs, executor="tcp://host:8786")`.

The local default is a process pool on this machine (mmlab.runner.run_many, n_jobs). Naming an
executor sends every uncached run to Dask distributed instead:

    executor="tcp://scheduler:8786"   an existing cluster (`dask scheduler` + `dask worker ... --nthreads 1`)
    executor="local" / "local:4"      a LocalCluster on 127.0.0.1 with 2 (or 4) one-thread workers,
                                      started once per process and reused

or $MMLAB_EXECUTOR (notebooks: `-p executor tcp://...`). The on-disk run cache stays the single
source of truth: a worker trains through mmlab.runner.run, which writes the result atomically
(weights first, then the JSON) under the cache directory sent with the task, so a run finished
on any worker is a cache hit everywhere, and a worker killed mid-run leaves no result: Dask
reschedules the task on another worker (up to `retries` times more, plus the scheduler's own
allowed-failures) and that worker trains it from the start. A task's key is the run's cache key,
so a run asked for twice at once is trained once. Remote workers need the same mmlab version,
the cache directory on a shared filesystem (the path is sent as it is seen here) and, for
plugins, the plugin modules importable (their names are sent with each task).
"""
from __future__ import annotations

import os
from typing import List, Optional

ENV = "MMLAB_EXECUTOR"
_clients: dict = {}


def executor_from_env(executor: Optional[str] = None) -> Optional[str]:
    """`executor`, else $MMLAB_EXECUTOR, else None (the local process pool); "" and "pool" mean None."""
    name = executor if executor is not None else os.environ.get(ENV)
    return None if name in (None, "", "pool") else name


def client_for(executor: str):
    """A dask.distributed Client for `executor` ("local[:N]" or a scheduler address), cached per name."""
    if executor in _clients:
        return _clients[executor]
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError(f"executor={executor!r} needs Dask distributed: pip install -r requirements.txt "
                          f"(dask and distributed are pinned there)") from None
    if executor == "local" or executor.startswith("local:"):
        n = int(executor.split(":", 1)[1]) if ":" in executor else 2
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
    elif "://" in executor:
        client = Client(executor, timeout="30s")
    else:
        raise ValueError(f"executor must be 'local', 'local:N' or a Dask scheduler address such as "
                         f"'tcp://host:8786', got {executor!r}")
    _clients[executor] = client
    return client


def close_all() -> None:
    """Close every client (and the LocalClusters this process started)."""
    for name, client in list(_clients.items()):
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()
        del _clients[name]


def dask_task(cfg_dict: dict, cache_dir: str, plugins: List[str]) -> dict:
    """What a Dask worker runs: the run through mmlab.runner.run (cache hit or train + write)
    with one torch/BLAS thread, in the caller's cache directory, with the caller's plugins."""
    os.environ["MMLAB_CACHE"] = cache_dir
    from mmlab.plugins import load_plugins
    load_plugins(plugins)
    from mmlab.runner import RunConfig, _run_in_worker
    return _run_in_worker(RunConfig(**cfg_dict), wait=True)


def run_on_dask(executor: str, configs: list, retries: int = 2) -> List[dict]:
    """Result dicts of `configs` (uncached RunConfigs), trained on the Dask cluster `executor`,
    in order; a task whose worker died is retried on another worker."""
    from distributed import as_completed
    from mmlab.plugins import names_from_env
    from mmlab.utils import cache_root
    client = client_for(executor)
    cache, plugins = str(cache_root().resolve()), names_from_env()
    futures = [client.submit(dask_task, c.to_dict(), cache, plugins, key=f"mmlab-run-{c.hash()}",
                             pure=False, retries=retries) for c in configs]
    for f in as_completed(futures):         # raise the first failure as soon as it happens
        if f.status == "error":
            f.result()
    return client.gather(futures)
