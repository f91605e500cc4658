"""Manifests: the aggregates they are counted from (`counts`), one typed manifest per command
with its reconciliation formula, and the one table formatter."""
