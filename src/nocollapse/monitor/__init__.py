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
from nocollapse.monitor.observe import Monitor, infer_stop_gradient, monitor_config
from nocollapse.monitor.warnings import (
    WARNINGS_FILE,
    CollapseDetected,
    EarlyWarning,
    likely_causes,
)

__all__ = ["SPECTRA_FILE", "SPECTRUM_SCALARS", "WARNINGS_FILE", "CollapseDetected",
           "CollapseMonitor", "EarlyWarning", "Monitor", "MonitorConfig", "MonitorInputError",
           "SpectralSource", "Views", "fast_scalars", "infer_stop_gradient", "likely_causes",
           "monitor_config", "spectra_record"]
