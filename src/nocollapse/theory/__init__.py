"""nocollapse.theory"""
