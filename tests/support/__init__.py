"""What the tests share; test modules import from here, never from one another
(tests/security/test_test_rules.py checks it).

- `factories`: users, API clients holding a token, grants.
- `lake`: transaction records and rows, landed files, merges, ingestion runs.
- `restrictions`: restricted `read` grants, the `stored` fixture (loaded as a plugin).
- `pipeline`: the stream consumer on a thread, the `topic` fixture (loaded as a plugin).
- `polling`: `wait_until`, the one way a test waits (no fixed sleeps).
- `routes`: the /api/v1/ routes walked from the URL resolver.
- `net`: free local ports.
- `urls_boom`, `urls_edge`: URL confs of tests that need extra views.
"""
