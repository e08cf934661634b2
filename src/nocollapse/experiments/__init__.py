"""nocollapse.experiments"""
