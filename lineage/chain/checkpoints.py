"""Signed checkpoints of the chain, kept outside the database, one file per round.

A checkpoint says: "the chain's link number `sequence` is `hash`; this round sealed
`count` requests, from `first`; the checkpoint before this one was at `previous`",
with the time and an Ed25519 signature (keys.py). Files live under
`AUDIT_CHECKPOINT_ROOT` (default `LAKE_ROOT/audit/checkpoints/`), one folder a UTC day,
`YYYY/MM/DD/<sequence, 20 digits>.json`, created with O_EXCL and never rewritten. A cut
of the retention (retention.py) is a checkpoint of kind `cut` under `cuts/`: the start
of the chain from then on. A redaction (redaction.py) is signed as a record of kind
`redaction` under `redactions/`: `sequence` the redacted request's seal, `hash` the
digest of the body it had; a body replaced by a marker without one is found.

In production the folder is a mount of storage the database's administrators cannot
change (an S3 bucket with object lock, docs/AUDIT.md): a signature proves who wrote a
checkpoint, only such storage proves none was removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from django.conf import settings
from django.utils import timezone

from lineage.chain import keys

FORMAT = 1
KINDS = ("checkpoint", "cut", "redaction")
FOLDERS = {"cut": "cuts", "redaction": "redactions"}


@dataclass(frozen=True)
class Checkpoint:
    kind: str
    sequence: int
    hash: bytes
    at: dt.datetime
    count: int
    first: int
    previous: int | None
    key: str
    signature: str
    path: Path

    def payload(self) -> bytes:
        return _payload(self.kind, self.sequence, self.hash, self.at, self.count, self.first,
                        self.previous, self.key)  # fmt: skip


@dataclass(frozen=True)
class Unreadable:
    """A file in the folder that is no valid checkpoint: a `bad_checkpoint` finding."""

    path: Path
    sequence: int | None
    detail: str


def _payload(kind, sequence, hash_, at, count, first, previous, key) -> bytes:
    return orjson.dumps(
        {
            "format": FORMAT,
            "kind": kind,
            "sequence": sequence,
            "hash": hash_.hex(),
            "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "count": count,
            "first": first,
            "previous": previous,
            "key": key,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def root() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_ROOT)


def write(kind: str, sequence: int, hash_: bytes, *, count: int, first: int,
          previous: int | None, base: Path | None = None) -> Checkpoint:  # fmt: skip
    """Sign and write a checkpoint; FileExistsError if that file exists (never rewritten)."""
    at = timezone.now()
    payload = _payload(kind, sequence, hash_, at, count, first, previous, keys.current_id())
    key, signature = keys.sign(payload)
    folder = (base or root()) / FOLDERS.get(kind, at.strftime("%Y/%m/%d"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sequence:020d}.json"
    document = orjson.loads(payload) | {"signature": signature}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(
                orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
            )
            out.flush()
            os.fsync(out.fileno())
    except BaseException:  # not left half written (a bad_checkpoint for ever): the next round's
        with contextlib.suppress(OSError):  # covers (on object-locked storage, it stays)
            path.unlink()
        raise
    _fsync_dir(folder)
    return Checkpoint(kind, sequence, hash_, at, count, first, previous, key, signature, path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


WRITING = 30.0  # seconds: an empty file younger than this is being written
MAX_BYTES = 64 * 1024  # a checkpoint has ~400


def read(path: Path, verifying: dict) -> Checkpoint | Unreadable | None:
    """The checkpoint in `path` if it is well formed and its signature is good; None
    while it is being written (created empty with O_EXCL, its bytes come a moment
    later: a verification at that moment must not call it bad)."""
    name_sequence = int(path.stem) if path.stem.isdigit() else None
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:  # a device, a FIFO, a folder
            raise ValueError(f"not a regular file of at most {MAX_BYTES} bytes")
        content = path.read_bytes()
        if not content and time.time() - path.stat().st_mtime < WRITING:
            return None
        document = orjson.loads(content)
        if document.get("format") != FORMAT or document.get("kind") not in KINDS:
            raise ValueError("not a checkpoint of this format")
        checkpoint = Checkpoint(
            kind=document["kind"],
            sequence=_int(document["sequence"]),
            hash=bytes.fromhex(document["hash"]),
            at=dt.datetime.fromisoformat(document["at"]),
            count=_int(document["count"]),
            first=_int(document["first"]),
            previous=None if document["previous"] is None else _int(document["previous"]),
            key=str(document["key"]),
            signature=str(document["signature"]),
            path=path,
        )
        if len(checkpoint.hash) != 32 or checkpoint.at.tzinfo is None:
            raise ValueError("a hash of 32 bytes and an aware time are expected")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return Unreadable(path, name_sequence, f"{path.name}: unreadable ({exc})")
    problem = keys.check(checkpoint.payload(), checkpoint.key, checkpoint.signature, verifying)
    if problem:
        return Unreadable(path, checkpoint.sequence, f"{path.name}: {problem}")
    if name_sequence != checkpoint.sequence:
        return Unreadable(path, checkpoint.sequence, f"{path.name}: names another sequence")
    return checkpoint


def _int(value) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"not a sequence: {value!r}")
    return value


def _day_folders(base: Path) -> list[Path]:
    found = []
    for year in sorted(p for p in base.glob("[0-9][0-9][0-9][0-9]") if p.is_dir()):
        for month in sorted(p for p in year.glob("[0-9][0-9]") if p.is_dir()):
            found += sorted(p for p in month.glob("[0-9][0-9]") if p.is_dir())
    return found


def _day_of(folder: Path) -> dt.date:
    return dt.date(int(folder.parent.parent.name), int(folder.parent.name), int(folder.name))


def scan(verifying: dict, *, base: Path | None = None, until: dt.datetime | None = None,
         days: bool = True, cut: bool = True, since: dt.datetime | None = None,
         ) -> tuple[list[Checkpoint], list[Checkpoint], list[Unreadable]]:  # fmt: skip
    """(checkpoints, cuts, unreadable files), each by sequence. `until`: days after it
    are not read (a checkpoint written after `until` still counts if its day is read).
    `since`: days before the one of the newest checkpoint at or before it are not read
    (a verification from `since` needs none of them: a year of files is minutes).
    `days`, `cut`: False leaves the day folders or the cuts out."""
    base = base or root()
    good: list[Checkpoint] = []
    cuts: list[Checkpoint] = []
    bad: list[Unreadable] = []
    first = _start_day(base, since, verifying) if since is not None else None
    folders = [
        f for f in _day_folders(base)
        if (until is None or _day_of(f) <= until.date()) and (first is None or _day_of(f) >= first)
    ]  # fmt: skip
    chosen = [(f, good) for f in folders] if days else []
    for folder, into in chosen + ([(base / "cuts", cuts)] if cut else []):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            found = _of_kind(path, verifying, "cut" if into is cuts else "checkpoint", bad)
            if found is not None:
                into.append(found)
    key = lambda c: c.sequence  # noqa: E731
    return sorted(good, key=key), sorted(cuts, key=key), bad


def _start_day(base: Path, since: dt.datetime, verifying: dict) -> dt.date | None:
    """The day of the newest checkpoint written at or before `since` (None: none is)."""
    for folder in reversed(_day_folders(base)):
        if _day_of(folder) > since.date():
            continue
        for path in sorted(folder.iterdir(), reverse=True):
            found = read(path, verifying)
            if isinstance(found, Checkpoint) and found.kind == "checkpoint" and found.at <= since:
                return _day_of(folder)
    return None


def files(base: Path | None = None) -> list[tuple[dt.date, int | None, Path]]:
    """Every file of the day folders, by day then name: (day, the sequence its name gives
    or None, path). Names only: a walk reads just the files of its range."""
    found = []
    for folder in _day_folders(base or root()):
        day = _day_of(folder)
        for path in sorted(folder.iterdir()):
            found.append((day, int(path.stem) if path.stem.isdigit() else None, path))
    return found


def read_range(entries, verifying: dict, *, after: int, through: int,
               first_day: dt.date | None = None):  # fmt: skip
    """(checkpoints by sequence, unreadable files) among `entries` (files()) whose name
    puts them after `after` and up to `through`; a file named otherwise is read too,
    unless its day is before `first_day`."""
    good, bad = [], []
    for day, sequence, path in entries:
        if sequence is None and first_day is not None and day < first_day:
            continue
        if sequence is not None and not after < sequence <= through:
            continue
        found = _of_kind(path, verifying, "checkpoint", bad)
        if found is not None:
            good.append(found)
    return sorted(good, key=lambda c: c.sequence), bad


def newest_at_or_before(entries, verifying: dict, instant: dt.datetime, *, after: int):
    """The newest well-signed checkpoint after sequence `after` written at or before
    `instant` (the days after it not read), or None."""
    for day, sequence, path in reversed(entries):
        if day > instant.date() or sequence is None:
            continue
        if sequence <= after:
            return None
        found = read(path, verifying)
        if isinstance(found, Checkpoint) and found.kind == "checkpoint" and found.at <= instant:
            return found
    return None


def first_at_or_after(entries, verifying: dict, instant: dt.datetime, *, after: int):
    """The first well-signed checkpoint after sequence `after` written at or after
    `instant` (the days before it not read), or None."""
    for day, sequence, path in entries:
        if day < instant.date() or sequence is None or sequence <= after:
            continue
        found = read(path, verifying)
        if isinstance(found, Checkpoint) and found.kind == "checkpoint" and found.at >= instant:
            return found
    return None


def redactions(verifying: dict, *, base: Path | None = None
               ) -> tuple[dict[int, Checkpoint], list[Unreadable]]:  # fmt: skip
    """The signed redaction records by sequence, and the files that are none."""
    folder = (base or root()) / FOLDERS["redaction"]
    good: dict[int, Checkpoint] = {}
    bad: list[Unreadable] = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        found = _of_kind(path, verifying, "redaction", bad)
        if found is not None:
            good[found.sequence] = found
    return good, bad


def _of_kind(path: Path, verifying: dict, kind: str, bad: list) -> Checkpoint | None:
    """The well-signed file of `kind` in `path`, else None (and what is wrong in `bad`;
    nothing for a file still being written)."""
    found = read(path, verifying)
    if isinstance(found, Unreadable):
        bad.append(found)
    elif found is not None and found.kind != kind:
        bad.append(Unreadable(path, found.sequence, f"{path.name}: in the wrong folder"))
    elif found is not None:
        return found
    return None


def latest(verifying: dict, *, base: Path | None = None) -> Checkpoint | None:
    """The newest well-signed checkpoint (newest day first, highest sequence first), or
    the newest cut if it is further on (the day folders up to it expired)."""
    base = base or root()
    cut = _newest(base / "cuts", "cut", verifying)
    for folder in reversed(_day_folders(base)):
        found = _newest(folder, "checkpoint", verifying)
        if found is not None:
            return cut if cut is not None and cut.sequence > found.sequence else found
    return cut


def _newest(folder: Path, kind: str, verifying: dict) -> Checkpoint | None:
    if not folder.is_dir():
        return None
    for path in sorted(folder.iterdir(), reverse=True):
        found = read(path, verifying)
        if isinstance(found, Checkpoint) and found.kind == kind:
            return found
    return None
