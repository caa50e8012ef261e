"""Runs as one framework: the background work a request or beat starts (an ingestion run,
a re-push, a report, a training, an HTTP pull) and follows until it ends.

- `models.Run`: the abstract model (one status vocabulary, times, attempts, error, task
  id, the claim of the attempt executing it) and each kind's policies as class attributes.
- `lifecycle`: claim, start, beat, succeed/fail/skip, release, requeue; `execute` runs a
  body under a claim with a heartbeat.
- `tasks.RunTask`: the Celery base class of the kinds' tasks; `runs.recover_stalled`, the
  one beat job that recovers every kind's stalled runs by that kind's policy.
- `admin.RunAdmin`: the same columns and filters for every kind.
"""
