"""nocollapse.diagnostics"""
