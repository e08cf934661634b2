"""nocollapse.evaluate"""
