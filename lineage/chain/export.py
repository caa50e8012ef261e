"""An export of a sealed range, verifiable offline: `export_audit` writes it and
`verify_audit --export` checks it on any machine with the public keys.

The range runs from a trusted start (the genesis, a retention cut, or the newest
checkpoint at or before `since`) to a checkpoint (the first at or after `until`, else
the newest), so every exported request lies under a signature. The folder holds
`manifest.json`, `requests.jsonl` (a seal and its request a line, the columns in the
encoding's form) and `checkpoints/` (copies of the signed files of the range, with the
redaction records of its requests).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import orjson

from datalake.errors import Conflict, Invalid
from lineage.chain import checkpoints, verify

FORMAT = 1


def write(out: Path, *, since: dt.datetime | None, until: dt.datetime | None,
          verifying: dict) -> dict:  # fmt: skip
    """Write the export of the range into `out` (a new or empty folder); its manifest."""
    if out.exists() and any(out.iterdir()):
        raise Invalid(f"{out} is not empty.")
    with verify.snapshot() as cursor:
        # as verify.database: the day folders before the snapshot, the cuts after
        marks, _cuts, _bad = checkpoints.scan(verifying, cut=False, since=since)
        cursor.execute("SELECT 1")
        _marks, cuts, _bad = checkpoints.scan(verifying, days=False)
        redactions, _bad = checkpoints.redactions(verifying)
        start, end, rows = _write(out, cursor, marks, cuts, redactions, since=since, until=until)
    manifest = {"format": FORMAT, "start": start, "end": end, "rows": rows}
    (out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return manifest


def _write(out: Path, cursor, marks: list, cuts: list, redactions: dict, *, since, until
           ) -> tuple[int, int, int]:  # fmt: skip
    start, _link = verify.start_of(cuts)
    start_mark = cuts[-1] if cuts else None
    if since is not None:
        before = [m for m in marks if m.at <= since and m.sequence > start]
        if before:
            start_mark = before[-1]
            start = start_mark.sequence
    ends = [m for m in marks if m.sequence > start]
    if not ends:
        raise Conflict("No checkpoint after the start yet: nothing sealed to export.")
    after = [m for m in ends if until is not None and m.at >= until]
    end = (after[0] if after else ends[-1]).sequence
    copied = ([start_mark] if start_mark else []) + cuts + [m for m in ends if m.sequence <= end]
    copied += [r for sequence, r in redactions.items() if start < sequence <= end]
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    for mark in {m.path: m for m in copied}.values():
        target = out / "checkpoints" / mark.path.relative_to(checkpoints.root())
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(mark.path, target)
    rows = 0
    with (out / "requests.jsonl").open("wb") as lines:
        for sequence, log_id, body_digest, stored, columns, body in verify.stream(
            cursor, start, end
        ):
            lines.write(orjson.dumps({
                "sequence": sequence, "log_id": log_id,
                "body_hash": bytes(body_digest).hex(), "hash": bytes(stored).hex(),
                "columns": columns, "body": body,
            }, option=orjson.OPT_APPEND_NEWLINE))  # fmt: skip
            rows += 1
    return start, end, rows


def check(folder: Path, *, verifying: dict) -> verify.Report:
    """Verify an export: its requests against its own signed checkpoints."""
    report = verify.Report()
    try:
        manifest = orjson.loads((folder / "manifest.json").read_bytes())
        start, end = int(manifest["start"]), int(manifest["end"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Invalid(f"{folder} is no audit export: {exc}") from None
    marks, cuts, bad = checkpoints.scan(verifying, base=folder / "checkpoints")
    redactions, bad_records = checkpoints.redactions(verifying, base=folder / "checkpoints")
    verify.bad_files(bad + bad_records, report)
    link = verify.start_of([])[1]
    if start:
        anchors = [m for m in marks + cuts if m.sequence == start]
        if not anchors:
            report.add("bad_checkpoint", start, "the export's start is no signed checkpoint")
            return report
        link = anchors[0].hash
    if end != start and not any(m.sequence == end for m in marks):
        report.add("bad_checkpoint", end, "the export's end is no signed checkpoint")
    marks = [m for m in marks if m.sequence <= end]
    # what lies outside the range its start and checkpoints cover is not walked
    rows = (row for row in _lines(folder / "requests.jsonl") if start < row[0] <= end)
    return verify.check(rows, start, link, marks, report, redactions)


def _lines(path: Path) -> Iterator[verify.Sealed]:
    if not path.is_file():  # a device or a FIFO would never end
        raise Invalid(f"{path.name} is not a regular file.")
    last = -1
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            try:
                row = orjson.loads(line)
                columns, body = row["columns"], row["body"]
                if not (_whole(row["sequence"]) and _whole(row["log_id"])):
                    raise ValueError("a sequence and a request id are whole numbers")
                if row["sequence"] <= last:
                    raise ValueError("the sequences are not ascending")
                last = row["sequence"]
                if not (columns is None or isinstance(columns, list)) or not (
                    body is None or isinstance(body, str)
                ):
                    raise ValueError("columns are a list, a body a string")
                sealed = (
                    row["sequence"], row["log_id"], bytes.fromhex(row["body_hash"]),
                    bytes.fromhex(row["hash"]), tuple(columns) if columns is not None else None,
                    body,
                )  # fmt: skip
            except (ValueError, KeyError, TypeError) as exc:
                raise Invalid(f"{path.name}, line {number}: not an exported seal ({exc})") from None
            yield sealed


def _whole(value) -> bool:
    return type(value) is int
