"""Collapse diagnostics from plain tensors: metrics, spectra, early warnings.

Framework-free (it imports diagnostics, runio, errors and torch, nothing of training):
``nocollapse train`` uses :class:`CollapseMonitor` as a loop callback, and a user's own
loop or the Lightning callback use it through :class:`Monitor`.
"""

from nocollapse.monitor.core import SPECTRA_FILE, CollapseMonitor, MonitorConfig
from nocollapse.monitor.inputs import MonitorInputError
from nocollapse.monitor.measures import (
    SPECTRUM_SCALARS,
    SpectralSource,
    Views,
    fast_scalars,
    spectra_record,
)
from nocollapse.monitor.observe import Monitor
from nocollapse.monitor.warnings import (
    WARNINGS_FILE,
    CollapseDetected,
    EarlyWarning,
    likely_causes,
)

__all__ = ["SPECTRA_FILE", "SPECTRUM_SCALARS", "WARNINGS_FILE", "CollapseDetected",
           "CollapseMonitor", "EarlyWarning", "Monitor", "MonitorConfig", "MonitorInputError",
           "SpectralSource", "Views", "fast_scalars", "likely_causes", "spectra_record"]
