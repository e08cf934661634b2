"""nocollapse.data"""
