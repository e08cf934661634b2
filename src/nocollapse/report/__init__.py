"""nocollapse.report: figures and summaries from run directories, without rerunning."""

from nocollapse.report.build import Report, build_report, default_out_dir
from nocollapse.report.runs import Run, load_run

__all__ = ["Report", "Run", "build_report", "default_out_dir", "load_run"]
