"""The Delta Sharing Python connector, driven from the tests (tests/support/deltasharing.py).

Run by the connector's own virtual environment's Python, never imported by the suite:
it imports only the standard library, `delta_sharing` and `pandas`.

    python ds_client.py <profile> <command> '<JSON arguments>'

Commands: `list_all_tables`; `load` (url, version, timestamp, limit); `changes` (url,
starting_version, ending_version, starting_timestamp, ending_timestamp); `version` (url,
starting_timestamp); `metadata` (url). One JSON object on the last line of stdout: a
frame is {"columns": [...], "dtypes": {column: dtype}, "rows": [records]} with dates,
timestamps and decimals as ISO/plain strings, missing values as null. A failure is
{"error": class name, "status": HTTP status or null, "message": ..., "body": the
server's answer or null}, exit status 1.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
import sys

import delta_sharing
import pandas as pd


def plain(value):
    """A JSON value for one cell."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if getattr(value, "ndim", 0) > 0:  # numpy arrays: an array column's cells
        return [plain(v) for v in value.tolist()]
    if hasattr(value, "item"):  # numpy scalars
        return plain(value.item())
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def frame(df: pd.DataFrame) -> dict:
    columns = [str(c) for c in df.columns]
    rows = [
        {column: plain(value) for column, value in zip(columns, record, strict=True)}
        for record in df.astype(object).itertuples(index=False, name=None)
    ]
    return {
        "columns": columns,
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "rows": rows,
    }


def run(profile: str, command: str, args: dict) -> dict:
    if command == "list_all_tables":
        tables = delta_sharing.SharingClient(profile).list_all_tables()
        return {"tables": [{"share": t.share, "schema": t.schema, "name": t.name} for t in tables]}
    if command == "load":
        return frame(
            delta_sharing.load_as_pandas(
                args["url"],
                limit=args.get("limit"),
                version=args.get("version"),
                timestamp=args.get("timestamp"),
            )
        )
    if command == "changes":
        return frame(
            delta_sharing.load_table_changes_as_pandas(
                args["url"],
                starting_version=args.get("starting_version"),
                ending_version=args.get("ending_version"),
                starting_timestamp=args.get("starting_timestamp"),
                ending_timestamp=args.get("ending_timestamp"),
            )
        )
    if command == "version":
        version = delta_sharing.get_table_version(
            args["url"], starting_timestamp=args.get("starting_timestamp")
        )
        return {"version": version}
    if command == "metadata":
        metadata = delta_sharing.get_table_metadata(args["url"], use_delta_format=False)
        return {
            "id": metadata.id,
            "name": metadata.name,
            "schema_string": metadata.schema_string,
            "partition_columns": list(metadata.partition_columns or []),
        }
    raise SystemExit(f"unknown command {command!r}")


def failure(error: BaseException) -> dict:
    response = getattr(error, "response", None)
    body = None
    if response is not None:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:2000]
    return {
        "error": type(error).__name__,
        "status": getattr(response, "status_code", None),
        "message": str(error)[:2000],
        "body": body,
    }


def main() -> int:
    profile, command = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    try:
        answer = run(profile, command, args)
    except Exception as error:  # every failure is reported as JSON
        print(json.dumps(failure(error)))
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown: pyarrow's and fsspec's threads sometimes abort it
    # ("terminate called without an active exception", SIGABRT) after the answer is out.
    os._exit(code)
