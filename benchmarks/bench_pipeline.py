"""Pipeline speed: papermill's per-notebook overhead, and folds in parallel on Dask.

1. Overhead: an empty template (parameters cell and one trivial cell) executed with papermill,
   sequentially, in this process: kernel start + injection + execution + save. The baseline is
   the same trivial cell run in this process without a notebook. Then the same notebook
   through ``execute_task``, the unit a Dask worker runs: papermill in a child process of its
   own (so a cancelled run can kill it and its kernel), writing into a temporary attempt
   folder moved into place at the end; the difference is the price of that isolation.
2. Speed-up: the walk-forward fold template over 8 folds of the bundled BTC/USDT 1-minute
   sample (``sma_cross``, 6-point grid), run by ``run_pipeline`` on a LocalCluster with 1 worker
   and with 2 workers (cluster start included). Target: >= 1.6x on 2 cores.

The machine may be shared: the script prints the load average next to the numbers.

    .venv/bin/python benchmarks/bench_pipeline.py [--repeats 5] [--folds 8]

Writes ``benchmarks/results/bench_pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
import pandas as pd
from nbformat.v4 import new_code_cell, new_notebook

from chimera_lab.pipelines import PipelineSpec, run_pipeline
from chimera_lab.pipelines.spec import project_root

RESULTS = Path(__file__).resolve().parent / "results" / "bench_pipeline.json"


def _empty_template(path: Path) -> Path:
    nb = new_notebook(
        cells=[
            new_code_cell('output_dir: str = ""  # unused', metadata={"tags": ["parameters"]}),
            new_code_cell("x = 1 + 1"),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def bench_overhead(repeats: int, tmp: Path) -> dict[str, float]:
    import papermill

    from chimera_lab.pipelines import NotebookTask, execute_task

    template = _empty_template(tmp / "empty.ipynb")
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        papermill.execute_notebook(
            str(template),
            str(tmp / f"empty-{i}.ipynb"),
            parameters={"output_dir": str(tmp)},
            progress_bar=False,
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
        times.append(time.perf_counter() - t0)
    task_times = []
    for i in range(repeats):
        task = NotebookTask(
            task_id=f"t{i}",
            template=str(template),
            notebook=str(tmp / "tasks" / f"t{i}.ipynb"),
            output_dir=str(tmp / "tasks" / f"t{i}"),
            parameters={"output_dir": "."},
        )
        t0 = time.perf_counter()
        outcome = execute_task(task)
        task_times.append(time.perf_counter() - t0)
        assert outcome.status == "ok", outcome.error
    t0 = time.perf_counter()
    for _ in range(repeats):
        x = 1 + 1  # noqa: F841 - the baseline: the cell's work without a notebook
    baseline = (time.perf_counter() - t0) / repeats
    return {
        "repeats": repeats,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "execute_task_median_s": statistics.median(task_times),
        "execute_task_min_s": min(task_times),
        "baseline_s": baseline,
    }


def _spec(folds: int) -> PipelineSpec:
    templates = project_root() / "notebooks" / "templates"
    first_bar = pd.Timestamp("2024-07-26 14:15", tz="UTC")  # the sample's first bar
    end = first_bar + pd.Timedelta(days=2 + folds) - pd.Timedelta(minutes=1)
    return PipelineSpec.model_validate(
        {
            "name": "bench_folds",
            # 2-day train + `folds` 1-day tests from the start of the sample
            "data": {"path": "btcusdt_1m", "end": end.isoformat()},
            "folds": {"train": "2D", "test": "1D", "warmup": 120, "check_lookahead": False},
            # (each fold still checks its chosen point and verifies its warm-up: what a run does)
            "steps": [
                {
                    "name": "fold",
                    "template": str(templates / "walk_forward_fold.ipynb"),
                    "foreach": "fold",
                    "parameters": {
                        "strategy": "sma_cross",
                        "grid": {"fast": [5, 10, 20], "slow": [60, 120]},
                    },
                }
            ],
        }
    )


def bench_parallel(folds: int, tmp: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        result = run_pipeline(
            _spec(folds), runs_dir=tmp / f"w{workers}", workers=workers, progress=False
        )
        out[f"wall_s_{workers}_worker"] = time.perf_counter() - t0
        assert result.ok, result.failed_tasks
        assert len(result.manifest["tasks"]) == folds
        durations = [t["duration_s"] for t in result.manifest["tasks"]]
        out[f"mean_fold_s_{workers}_worker"] = statistics.mean(durations)
    out["speedup"] = out["wall_s_1_worker"] / out["wall_s_2_worker"]
    out["folds"] = folds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folds", type=int, default=8)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp_name:
        tmp = Path(tmp_name)
        overhead = bench_overhead(args.repeats, tmp)
        parallel = bench_parallel(args.folds, tmp)
    load_after = os.getloadavg()
    print(f"{'measure':<46}{'value':>12}")
    print(f"{'papermill empty notebook, median (s)':<46}{overhead['median_s']:>12.2f}")
    print(f"{'  min / max (s)':<46}{overhead['min_s']:>6.2f} / {overhead['max_s']:.2f}")
    print(f"{'  same cell without a notebook (s)':<46}{overhead['baseline_s']:>12.2e}")
    task_s = overhead["execute_task_median_s"]
    print(f"{'execute_task (child process), median (s)':<46}{task_s:>12.2f}")
    print(
        f"{'  isolation cost vs papermill in-process (s)':<46}"
        f"{task_s - overhead['median_s']:>12.2f}"
    )
    print(f"{'8 folds, 1 worker, wall (s)':<46}{parallel['wall_s_1_worker']:>12.1f}")
    print(f"{'8 folds, 2 workers, wall (s)':<46}{parallel['wall_s_2_worker']:>12.1f}")
    print(
        f"{'  mean fold notebook, 1 / 2 workers (s)':<46}"
        f"{parallel['mean_fold_s_1_worker']:>6.1f} / {parallel['mean_fold_s_2_worker']:.1f}"
    )
    print(f"{'speed-up 2 vs 1 worker (target >= 1.6x)':<46}{parallel['speedup']:>11.2f}x")
    print(
        f"load average before / after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        f"on {os.cpu_count()} cores"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "overhead": overhead,
                "parallel": parallel,
                "cpu_count": os.cpu_count(),
                "load_average_before": load_before,
                "load_average_after": load_after,
                "python": platform.python_version(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
