"""nocollapse.losses"""
