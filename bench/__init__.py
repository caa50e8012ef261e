"""Benchmarks: run with the bench settings (`DJANGO_SETTINGS_MODULE=bench.settings`).

Nothing here is part of the product; see docs/BENCHMARKS.md.
"""
