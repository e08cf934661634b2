"""Turn run directories into a folder of PNG figures and a ``report.md``; runs nothing again."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nocollapse.errors import NocollapseError, OutputError
from nocollapse.report import embedding, figures, theory_run
from nocollapse.report.diagnosis import diagnosis_section
from nocollapse.report.markdown import render
from nocollapse.report.runs import Run, label_runs, load_run
from nocollapse.runio import atomic_write_text, ensure_dir

REPORT_FILE = "report.md"
Attempt = Callable[[str, Path, bool, str], None]
METRICS = ("loss", "knn_accuracy", "collapse_level", "effective_rank")


@dataclass
class Report:
    """What :func:`build_report` wrote: ``files`` (PNG paths and report.md) and notes."""

    out_dir: Path
    markdown: Path
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def default_out_dir(run_dirs: Sequence[str | Path]) -> Path:
    """``RUN_DIR/report`` for one run, ``./report`` for several."""
    return Path(run_dirs[0]) / "report" if len(run_dirs) == 1 else Path("report")


def build_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path | None = None,
    alignment_epochs: Sequence[int] | None = None,
) -> Report:
    """Read ``run_dirs`` and write figures plus ``report.md`` into ``out_dir``.

    Figures: ``<metric>.png`` for loss, k-NN accuracy, collapse level and effective
    rank (all runs overlaid), and per run ``<label>-F_eigenvalues.png``,
    ``<label>-Wp_eigenvalues.png``, ``<label>-Z_eigenvalues.png``,
    ``<label>-alignment.png``, ``<label>-predictor_spectrum.png`` (training with a
    linear or spectral predictor, with the power law and ``eta / eta_c`` in report.md:
    docs/theory.md#theory-in-a-run), or ``<label>-modes.png`` and
    ``<label>-extras.png`` (simulation: the other scalar series of metrics.jsonl).
    A figure whose data is absent is skipped with a note in the report.
    """
    if not run_dirs:
        raise NocollapseError("no run directory given; pass at least one RUN_DIR")
    paths = [Path(p) for p in run_dirs]
    runs = [load_run(p) for p in paths]
    names = [run.config.get("name") for run in runs]
    for run, label in zip(runs, label_runs(paths, [n if isinstance(n, str) else None
                                                   for n in names]), strict=True):
        run.label = label
    out = Path(out_dir) if out_dir is not None else default_out_dir(run_dirs)
    if out_dir is None and out.is_symlink():
        raise OutputError(f"{out} is a symlink (to {out.resolve()}); nocollapse writes nothing "
                          "through links in a run directory. Remove it, or pass --out")
    ensure_dir(out, "report folder")
    drawn: list[tuple[str, Path]] = []
    skipped: list[str] = []

    def attempt(caption: str, path: Path, ok: bool, why: str) -> None:
        if ok:
            drawn.append((caption, path))
        else:
            skipped.append(f"{caption}: skipped ({why})")

    for metric in METRICS:
        path = out / f"{metric}.png"
        caption = figures.METRIC_LABELS[metric].split(" (")[0]
        attempt(caption, path, figures.plot_metric(runs, metric, path), f"no run logged {metric}")
    path = out / "learning_curves.png"
    attempt("k-NN accuracy vs wall time, with baselines", path,
            figures.plot_learning_curves(runs, path),
            "no run logged k-NN with train_seconds (eval.knn_every) or a final evaluation")
    sections = []
    for run in runs:
        _run_figures(run, out, alignment_epochs, attempt)
        sections.append(_theory_section(run, out, alignment_epochs, attempt))
        sections.append(diagnosis_section(run, out, attempt))

    markdown = out / REPORT_FILE
    atomic_write_text(markdown, render(runs, drawn, skipped, out, [s for s in sections if s]))
    return Report(out, markdown, [p for _, p in drawn] + [markdown], skipped)


def _theory_section(run: Run, out: Path, wanted: Sequence[int] | None, attempt: Attempt
                    ) -> str:
    """The predictor power-law figure and the report.md section of one training run."""
    if run.kind != "training":
        return ""
    spectra = theory_run.predictor_spectra(run, theory_run.spectrum_epochs(run, wanted))
    if spectra:
        path = out / f"{run.label}-predictor_spectrum.png"
        attempt(f"{run.label}: predictor spectrum p_j vs s_j in F_hat's eigenbasis", path,
                figures.plot_predictor_spectrum(run, spectra, path), "no positive p_j, s_j")
    return theory_run.markdown_section(run, spectra)


def _embedding_figure(run: Run, out: Path, attempt: Attempt) -> None:
    """The run's final test features in 2-D beside the random-init encoder's."""
    arrays, why = embedding.read_embedding(run.path)
    path = out / f"{run.label}-embedding.png"
    if arrays is not None:
        classes = [str(name) for name in arrays.get("classes", np.array([], dtype=np.str_))]
        embedding.plot_embedding(embedding.embedding_maps(arrays), run.label, path, classes)
        n = len(arrays["labels"])
        caption = (f"{run.label}: {n} test images' final features in 2-D (t-SNE, or UMAP "
                   "when umap-learn is installed) beside the random-init encoder's")
    else:
        caption = f"{run.label}: final features in 2-D"
    attempt(caption, path, arrays is not None, why)


def _run_figures(run: Run, out: Path, wanted: Sequence[int] | None, attempt: Attempt) -> None:
    if run.kind == "simulation":
        path = out / f"{run.label}-modes.png"
        ok = figures.plot_simulation(run, path)
        attempt(
            f"{run.label}: mode trajectories",
            path,
            ok,
            "no 'simulated' eigenvalue lists in metrics.jsonl",
        )
        path = out / f"{run.label}-extras.png"
        ok = figures.plot_extras(run, path, exclude=METRICS)
        attempt(f"{run.label}: further series", path, ok, "no further scalar series logged")
        return
    for key, title in figures.SPECTRA_TITLES.items():
        path = out / f"{run.label}-{key}.png"
        attempt(
            f"{run.label}: {title}",
            path,
            figures.plot_eigen_trajectories(run, key, path),
            _why_missing(run, key),
        )
    _embedding_figure(run, out, attempt)
    epochs = figures.alignment_epochs(run, wanted)
    path = out / f"{run.label}-alignment.png"
    attempt(
        f"{run.label}: eigen-alignment at epochs {epochs}",
        path,
        figures.plot_alignment(run, epochs, path),
        _skipped_reason(run, "alignment") or (
            "no alignment matrix in spectra.jsonl at these epochs: it needs F_hat and a linear "
            "predictor Wp, and is saved for d <= monitor.alignment_max_dim"),
    )


def _skipped_reason(run: Run, key: str) -> str | None:
    """The monitor's reason for leaving ``key`` out of spectra.jsonl (its ``skipped``)."""
    for record in reversed(run.spectra):
        skipped = record.get("skipped")
        if isinstance(skipped, dict) and isinstance(reason := skipped.get(key), str):
            return f"no {key} in spectra.jsonl: {reason[:200]}"
    return None


def _why_missing(run: Run, key: str) -> str:
    if not run.spectra:
        return "spectra.jsonl is missing"
    return _skipped_reason(run, key) or f"no {key} in spectra.jsonl"
