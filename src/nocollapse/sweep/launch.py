"""Launchers on existing engines: a ``concurrent.futures`` process pool, or Slurm via submitit.

Both call :func:`nocollapse.sweep.cell.run_cell` once per cell and hand each finished
cell's record to ``on_done`` as it arrives. A cell that fails for another reason than
divergence gives a ``failed`` record (no ``outcome.json``: a rerun tries it again).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nocollapse.errors import ConfigError, OutputError
from nocollapse.runio.records import CellRecord, ConfigDict
from nocollapse.sweep.cell import run_cell
from nocollapse.sweep.workers import init_worker, kill_workers, signals_held

Job = tuple[ConfigDict, str]  # (the cell's config values, its name)
OnDone = Callable[[CellRecord], None]
SLURM_DIR = "slurm"  # SWEEP_DIR/slurm/: submitit's job scripts, pickles and logs
CLUSTERS = ("slurm", "local", "debug")
INSTALL_SUBMITIT = ("--launcher slurm needs the submitit package, which is not installed; "
                    "install it with: pip install 'nocollapse[slurm]' (or pip install submitit)")


@dataclass(frozen=True)
class SlurmOptions:
    """What the job array asks Slurm for; ``cluster`` ``local``/``debug`` runs it here."""

    partition: str | None = None
    time_min: int = 60
    gpus: int = 0
    array_parallelism: int = 16
    cpus_per_task: int = 1
    cluster: str = "slurm"


def require_submitit() -> Any:
    """The submitit module, or a ConfigError saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(INSTALL_SUBMITIT) from None
    return submitit


def _failed(name: str, error: BaseException) -> CellRecord:
    message = " ".join(str(error).split()) or type(error).__name__
    return {"name": name, "outcome": "failed", "error": f"{type(error).__name__}: {message}",
            "ran": True}


def launch_local(jobs: list[Job], workers: int, on_done: OnDone) -> None:
    """Run ``jobs`` in a pool of ``workers`` processes (spawned: no forked torch state).

    The workers die with this process, however it ends, and Ctrl-C or SIGTERM stops
    them at once: no queued cell starts (:mod:`nocollapse.sweep.workers`).
    """
    if not jobs:
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=init_worker, initargs=(os.getpid(),))
    try:
        with signals_held():
            futures: dict[Future[CellRecord], str] = {
                pool.submit(run_cell, values, name): name for values, name in jobs}
        for future in as_completed(futures):
            try:
                record = future.result()
            except Exception as error:
                record = _failed(futures[future], error)
            on_done(record)
    except BaseException:
        kill_workers(pool)
        raise
    pool.shutdown(wait=True)


def launch_slurm(jobs: list[Job], out: Path, options: SlurmOptions, on_done: OnDone) -> None:
    """Submit ``jobs`` as one job array through submitit and wait for each task."""
    submitit = require_submitit()
    if not jobs:
        return
    executor = make_executor(submitit, out, options, len(jobs))
    try:
        submitted = executor.map_array(run_cell, [values for values, _ in jobs],
                                       [name for _, name in jobs])
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError,
            OSError, RuntimeError) as error:
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        raise OutputError(f"submitting the job array failed ({type(error).__name__}: "
                          f"{first[:300]}); no cell was started. Check sbatch's message and "
                          f"the logs under {out / SLURM_DIR}, then run the same command "
                          "again") from error
    names = {job.job_id: name for job, (_, name) in zip(submitted, jobs, strict=True)}
    poll = 1.0 if options.cluster != "slurm" else 15.0
    for job in submitit.helpers.as_completed(submitted, poll_frequency=poll):
        try:
            record = job.result()
        except Exception as error:
            record = _failed(names[job.job_id], error)
        on_done(record)


def make_executor(submitit: Any, out: Path, options: SlurmOptions, tasks: int) -> Any:
    """A submitit executor for the sweep's array (logs under ``out/slurm``)."""
    executor = submitit.AutoExecutor(folder=str(out / SLURM_DIR / "%j"),
                                     cluster=options.cluster)
    executor.update_parameters(name=f"nocollapse-sweep-{out.name}", timeout_min=options.time_min,
                               cpus_per_task=options.cpus_per_task,
                               gpus_per_node=options.gpus or None, tasks_per_node=1,
                               slurm_array_parallelism=min(options.array_parallelism, tasks),
                               **({"slurm_partition": options.partition}
                                  if options.partition else {}))
    return executor


def check_slurm(options: SlurmOptions) -> None:
    """Refuse what would fail at submission, before anything is written."""
    require_submitit()
    if options.cluster not in CLUSTERS:
        raise ConfigError(f"--slurm-cluster {options.cluster!r} is not one of "
                          f"{', '.join(CLUSTERS)}")
    if options.cluster == "slurm" and shutil.which("srun") is None:
        raise ConfigError("--launcher slurm: Slurm's srun is not on this machine's PATH; "
                          "run the sweep on a Slurm login node (--slurm-cluster local runs "
                          "the same job array here, one process per task)")
    for name, value, low in (("--time", options.time_min, 1), ("--gpus", options.gpus, 0),
                             ("--array-parallelism", options.array_parallelism, 1)):
        if value < low:
            raise ConfigError(f"{name} {value} must be >= {low}")
