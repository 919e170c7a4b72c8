"""Helpers for tests and benchmarks: random-weight models of real architectures
(:mod:`.random_models`) and the bank-builder benchmark (:mod:`.benchmark`).

Production code never imports this package; importing :mod:`.benchmark` registers its
benchmark segmenter, so only a test or a benchmark that asks for it gets it.
"""
