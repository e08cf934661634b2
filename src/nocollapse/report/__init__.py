"""nocollapse.report: figures and summaries from run directories, without rerunning."""
