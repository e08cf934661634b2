"""nocollapse.train"""
