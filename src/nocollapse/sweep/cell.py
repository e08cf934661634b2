"""One cell of a sweep, in a worker process: train (fresh or resumed), then its outcome record.

:func:`run_cell` is what both launchers call (a process-pool worker or a Slurm array
task). A cell whose ``outcome.json`` exists is done and returned untouched; one with a
checkpoint is resumed by the training loop's exact resume; otherwise it starts fresh.
The outcome record (:mod:`nocollapse.sweep.outcome`) gains the label-free metrics of the
final encoder, computed here: RankMe and alpha-ReQ of the backbone features of
:data:`LABEL_FREE_IMAGES` training images, LiDAR of the projector outputs of
:data:`LIDAR_SAMPLES` images under :data:`LIDAR_VIEWS` augmented views each.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import cast

import torch
from threadpoolctl import threadpool_limits

from nocollapse import diagnostics
from nocollapse.errors import TrainingDivergedError
from nocollapse.evaluate import encoder_in_eval_mode, extract_features
from nocollapse.methods import SiameseLearner
from nocollapse.rundir.checkpoint import checkpoint_path, load_checkpoint
from nocollapse.runio import CELL_OUTCOME_FILE, atomic_write_text, read_json_record
from nocollapse.runio.records import CellRecord, ConfigDict
from nocollapse.sweep.outcome import OUTCOMES, RUN_DIR_FIGURES, read_cell, refine_outcome
from nocollapse.train import setup, train
from nocollapse.train.config import TrainConfig

LABEL_FREE_IMAGES = 1024  # the first images of the training split, unaugmented
LIDAR_SAMPLES, LIDAR_VIEWS = 256, 4
LABEL_FREE_KEYS = ("rankme", "alpha_req", "lidar")


def run_cell(config_values: ConfigDict, name: str) -> CellRecord:
    """Train the cell (or resume it) and return its outcome record (also in outcome.json)."""
    config = TrainConfig.from_dict(config_values)
    # numpy/scipy's BLAS would otherwise start a thread per core in every worker. The
    # monitor's warning panels are not printed: the sweep prints one line per cell, and
    # each warning is in the cell's warnings.jsonl and the table's first-warning columns.
    with threadpool_limits(limits=config.device.threads or 1), \
            contextlib.redirect_stderr(io.StringIO()):
        return _run_cell(config, name)


def _run_cell(config: TrainConfig, name: str) -> CellRecord:
    run_dir = Path(config.out)
    done = read_outcome(run_dir, name)
    if done is not None:
        # a record from an older nocollapse lacks newer keys: read them from the run directory
        # (a current one has them all, and a rerun sweep reads nothing else of its cells)
        if not done.keys() >= RUN_DIR_FIGURES:
            done = {**read_cell(run_dir), **done}
        return {**done, "ran": False}
    start = time.monotonic()
    resumed = checkpoint_path(run_dir).exists()
    diverged = False
    try:
        train(config, resume=resumed, quiet=True)
    except TrainingDivergedError:
        diverged = True
    record: CellRecord = {"name": name, **read_cell(run_dir)}
    metrics: CellRecord = dict.fromkeys(LABEL_FREE_KEYS)  # type: ignore[assignment]
    if not diverged and checkpoint_path(run_dir).exists():
        metrics = label_free_metrics(config, run_dir)
    record.update(metrics)
    record["outcome"] = refine_outcome(record) or "not collapsed"
    record["resumed"] = resumed
    record["seconds"] = round(time.monotonic() - start, 2)
    write_outcome(run_dir, record)
    return {**record, "ran": True}


def write_outcome(run_dir: Path, record: CellRecord) -> None:
    """``RUN_DIR/outcome.json``: the cell is done."""
    atomic_write_text(run_dir / CELL_OUTCOME_FILE, json.dumps(record, indent=2))


def read_outcome(run_dir: Path, name: str) -> CellRecord | None:
    """Cell ``name``'s outcome record, or None: not done, or the file is unreadable, is
    another cell's record, or lacks its outcome class or label-free metrics (the cell is
    then finished again from its run directory: a finished run is not trained again)."""
    loaded = read_json_record(run_dir / CELL_OUTCOME_FILE)
    if (loaded is None or loaded.get("name") != name or loaded.get("outcome") not in OUTCOMES
            or not all(key in loaded for key in LABEL_FREE_KEYS)):
        return None
    return cast(CellRecord, loaded)  # as this module wrote it


def label_free_metrics(config: TrainConfig, run_dir: Path) -> CellRecord:
    """RankMe, alpha-ReQ and LiDAR of the run's last checkpoint, and the seconds they took."""
    start = time.monotonic()
    saved = load_checkpoint(run_dir, map_location="cpu")
    data = setup.load_run_data(config)
    c, h, _ = data.train.image_shape
    learner = SiameseLearner(config.learner, c, h)  # the sweep's cells train the default learner
    learner.load_state_dict(saved["model"])
    images = data.train.images[:LABEL_FREE_IMAGES]
    with encoder_in_eval_mode(learner):
        features = extract_features(learner.encode, images, preset=data.preset).double()
    torch.manual_seed(config.seed)  # the run's initial weights (the loop seeds them so)
    initial = SiameseLearner(config.learner, c, h)
    with encoder_in_eval_mode(initial):
        init_features = extract_features(initial.encode, images, preset=data.preset).double()
    augment = setup.build_augment(config, data.preset)
    generator = torch.Generator().manual_seed(config.seed)
    batch = data.train.images[:LIDAR_SAMPLES]
    learner.eval()
    with torch.no_grad():
        views = torch.stack([learner.projector(learner.encode(augment(batch, generator)))
                             for _ in range(LIDAR_VIEWS)], dim=1)
    return {"rankme": diagnostics.rankme(features), "alpha_req": diagnostics.alpha_req(features),
            # the random-init encoder's on the same images: "learned" needs RankMe above it
            "init_rankme": diagnostics.rankme(init_features),
            "lidar": diagnostics.lidar(views.double()),
            "label_free_seconds": round(time.monotonic() - start, 2)}
