"""Post-merge hooks: what else a merge keeps current, registered by the apps that own it.

The lake writes versions; it does not know who derives something from them. An app
that keeps something in step with the tables (the search index, the metrics
aggregates) registers a callback in its `AppConfig.ready()`, and every merge calls the
callbacks inside its own transaction, in the order they were registered: what they
write commits, or rolls back, with the rows.

Three moments:

- `on_written(callback)`: a versioned merge wrote its rows (`Merge`); the version is
  not published yet and the stage table is still there (concurrent merges do this part
  side by side). Called for every merge, changed rows or not (`Merge.made`).
- `on_merged(callback)`: the version is recorded (`version_commit`); called only when
  the merge changed rows.
- `on_replaced(callback)`: rows of an unversioned table were replaced (`Replaced`).

A callback takes the event and returns nothing; it looks at `event.table` for the
tables it cares about. Registering the same callback twice keeps one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Merge:
    """One versioned merge of `table` (of `resource`) as `version`, from `source`."""

    resource: str
    table: str
    version: int
    stage: str  # the stage table's name (unquoted), there until the merge ends
    source: str  # what made it: `ingestion:42`, `repush:7`, `api:alice`, ...
    added: int
    changed: int
    removed: int

    @property
    def made(self) -> bool:
        """Whether the merge changed any row (else the version adds nothing)."""
        return bool(self.added or self.changed or self.removed)


@dataclass(frozen=True)
class Replaced:
    """The rows of an unversioned `table` matching `where` (SQL over its rows aliased
    `t`) were written again; with `days` (SQL selecting dates), every row of those days
    was replaced, and those that are gone are gone."""

    table: str
    where: str
    days: str | None = None


Hook = Callable[[Merge], None]
WRITTEN: list[Hook] = []
MERGED: list[Hook] = []
REPLACED: list[Callable[[Replaced], None]] = []


def _register(hooks: list, callback):
    if callback not in hooks:
        hooks.append(callback)
    return callback


def on_written(callback: Hook) -> Hook:
    """Call `callback(merge)` once a merge's rows are written, before it is published."""
    return _register(WRITTEN, callback)


def on_merged(callback: Hook) -> Hook:
    """Call `callback(merge)` once a merge that changed rows has recorded its version."""
    return _register(MERGED, callback)


def on_replaced(callback: Callable[[Replaced], None]) -> Callable[[Replaced], None]:
    """Call `callback(replaced)` when rows of an unversioned table are replaced."""
    return _register(REPLACED, callback)


def written(merge: Merge) -> None:
    for callback in WRITTEN:
        callback(merge)


def merged(merge: Merge) -> None:
    for callback in MERGED:
        callback(merge)


def replaced(event: Replaced) -> None:
    for callback in REPLACED:
        callback(event)
