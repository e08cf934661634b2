"""nocollapse.models"""
