"""The benchmarks' own server site: the product's settings and URLs plus the reference
views, importable from any tree (this one, or a `git worktree` of another ref that the
A/B mode measures). It names only modules both layouts have (`datalake.settings`,
`datalake.urls`, `datalake.models.Transaction`, `lineage.middleware`), so one harness
serves both. On the server's PYTHONPATH after the tree's root (bench/harness/tree.py).
"""
