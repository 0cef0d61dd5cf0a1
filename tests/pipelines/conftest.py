"""Fixtures for pipeline tests: a trivial template, a shared two-worker LocalCluster, and a real
`dask scheduler` + two `dask worker` processes on loopback.

Both clusters are started once per session (a few seconds each on two cores). Their teardown
asserts that every process they started is gone: workers, nannies, and any papermill child
or Jupyter kernel a test left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

HERE = Path(__file__).resolve().parent
TRIVIAL = HERE / "templates" / "trivial.ipynb"
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="session")
def trivial_template() -> Path:
    return TRIVIAL


def _descendants(pids: list[int]) -> list[psutil.Process]:
    out = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            out.extend([proc, *proc.children(recursive=True)])
        except psutil.NoSuchProcess:
            continue
    return out


def _assert_gone(procs: list[psutil.Process], what: str) -> None:
    _, alive = psutil.wait_procs(procs, timeout=30)
    described = []
    for p in alive:
        try:
            described.append(f"{p.pid}: {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            continue
    assert not described, f"{what} left processes behind: {described}"


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",  # random port: no clash, no port warning
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    workers = list(client.run(os.getpid).values())
    try:
        yield client
    finally:
        family = _descendants(workers)  # worker processes and anything they still run
        client.close(timeout=10)
        cluster.close(timeout=30)
        _assert_gone(family, "the LocalCluster")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    # Each process leads its own session: signal the whole group (a worker's nanny, its
    # worker process, and whatever they spawned), then kill what ignores SIGTERM.
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def _log_tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-20:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1, torn down after.

    Start-up failures show the processes' own output (kept in log files, not discarded).
    """
    from distributed import Client

    tmp = tmp_path_factory.mktemp("dask-cluster")
    scheduler_file = tmp / "scheduler.json"
    logs: list[Path] = []
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, args: list[str]) -> None:
        log = tmp / f"{name}.log"
        logs.append(log)
        with open(log, "wb") as out:
            procs.append(
                subprocess.Popen(
                    [str(DASK), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def failure(message: str) -> str:
        return message + "".join(f"\n--- {p.name}:\n{_log_tail(p)}" for p in logs)

    start(
        "scheduler",
        [
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(scheduler_file),
        ],
    )
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file():
            assert procs[0].poll() is None, failure("dask scheduler exited")
            assert time.monotonic() < deadline, failure("dask scheduler did not start in 60 s")
            time.sleep(0.1)
        for k in range(2):
            start(
                f"worker-{k}",
                [
                    "worker",
                    "--scheduler-file",
                    str(scheduler_file),
                    "--host",
                    "127.0.0.1",
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--dashboard-address",
                    "127.0.0.1:0",
                ],
            )
        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            try:
                client.wait_for_workers(2, timeout=120)
            except TimeoutError:
                pytest.fail(failure("the dask workers did not connect in 120 s"))
            address = client.scheduler_info()["address"]
            worker_pids = set(client.run(os.getpid).values())
        yield {"address": address, "worker_pids": worker_pids, "procs": procs}
    finally:
        family = _descendants([p.pid for p in procs])
        _stop(procs[1:])
        _stop(procs[:1])
        _assert_gone(family, "the dask scheduler and workers")
