"""nocollapse.methods"""
