"""nocollapse.predictors"""
