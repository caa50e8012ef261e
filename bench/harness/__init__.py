"""The benchmark harness: what every benchmark shares, written once.

- `tree`: a source tree to measure (this one, or a `git worktree` of another ref), its
  interpreter, `manage.py` and Django-side set-up jobs (`child.py`);
- `db`: the benchmark's own database, migrations, the transactions load;
- `server`: gunicorn with the bench settings (`site/benchsite`) on a free port, stopped
  whatever happens;
- `drivers`: HTTP GET, wrk (req/s, latency percentiles, server CPU per request, other
  work on the machine), one connection's sequential requests, drain, quiet wait;
- `machine`: the facts of the machine and of the code measured;
- `report`: targets (ratios to a limit or a peer measured in the same run) and the
  result tables, markdown and JSON in bench/results/.

The benchmarks themselves are the modules of `bench/scenarios/`; `bench/run.py` runs them.
"""
