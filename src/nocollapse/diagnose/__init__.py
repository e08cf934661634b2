"""Why did a run collapse? Branch it from its pre-collapse snapshot, one change per branch.

>>> from nocollapse.diagnose import DiagnoseRequest, run_diagnosis
>>> result = run_diagnosis(DiagnoseRequest(Path("runs/collapsed"), steps=200, workers=2))
>>> result["top_cause"], result["control_reproduced"]

Layer: between ``sweep`` (whose launcher trains the branches) and ``experiments``.
Interventions are registry entries (:func:`register_intervention`); docs/diagnose.md.
"""

from nocollapse.diagnose.interventions import (
    CONTROL,
    INTERVENTIONS,
    Intervention,
    RunFacts,
    register_intervention,
)
from nocollapse.diagnose.run import DEFAULT_STEPS, DiagnoseRequest, plan, run_diagnosis

__all__ = ["CONTROL", "DEFAULT_STEPS", "INTERVENTIONS", "DiagnoseRequest", "Intervention",
           "RunFacts", "plan", "register_intervention", "run_diagnosis"]
