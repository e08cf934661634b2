"""Grids of training runs: every cell an ordinary run directory, launched on a process pool
or as a Slurm job array (submitit), tabulated with outcome classes and label-free metrics.

>>> from nocollapse.sweep import SweepRequest, SweepSpec, parse_axis, run_sweep
>>> spec = SweepSpec(base={"method": "byol"}, axes=[parse_axis("optim.weight_decay=5e-4,0.05")])
>>> table = run_sweep(SweepRequest(spec, Path("runs/sweep")))
"""

from nocollapse.sweep.launch import SlurmOptions
from nocollapse.sweep.outcome import OUTCOMES, classify
from nocollapse.sweep.run import SweepRequest, prepare, run_sweep
from nocollapse.sweep.spec import Axis, Cell, SweepSpec, combine_axes, parse_axis, read_sweep_file

__all__ = ["OUTCOMES", "Axis", "Cell", "SlurmOptions", "SweepRequest", "SweepSpec", "classify",
           "combine_axes", "parse_axis", "prepare", "read_sweep_file", "run_sweep"]
