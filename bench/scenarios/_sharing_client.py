"""The client side of the `sharing` benchmark (bench/scenarios/sharing.py), run by the
python of the `delta-sharing` connector's own virtual environment (never the portal's):

    <venv>/bin/python bench/scenarios/_sharing_client.py load <profile> <table url>
    <venv>/bin/python bench/scenarios/_sharing_client.py limit <folder> | @<list of files>

Imports only the standard library, delta_sharing, pandas and pyarrow (the versions the
connector pins). Prints one `SHARING_CLIENT <json>` line:

    load   `delta_sharing.load_as_pandas(url)`, timed: rows, columns, seconds, and the
           process's peak RSS (what a data scientist runs)
    limit  the same Parquet files read from local disk by pyarrow into one pandas
           DataFrame, converted with the options the connector uses
           (`to_pandas(date_as_object=True, use_threads=False, split_blocks=False)`)
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load(profile: str, table: str) -> dict:
    import delta_sharing

    url = f"{profile}#{table}"
    t0 = time.perf_counter()
    frame = delta_sharing.load_as_pandas(url)
    seconds = time.perf_counter() - t0
    return {
        "rows": len(frame),
        "columns": list(frame.columns),
        "seconds": round(seconds, 3),
        "rows_per_s": round(len(frame) / seconds) if seconds else None,
        "sample": {k: str(v) for k, v in frame.iloc[0].items()} if len(frame) else {},
        "peak_rss_mb": peak_rss_mb(),
    }


def parquet_paths(where: str) -> list[str]:
    """`@file`: the paths it lists, one a line; a folder: its .parquet files."""
    if where.startswith("@"):
        return [x for x in Path(where[1:]).read_text().splitlines() if x.strip()]
    return sorted(str(p) for p in Path(where).rglob("*.parquet"))


def limit(where: str) -> dict:
    """Every file read by pyarrow (its default decoding, threads on, as the connector's
    `dataset(...).to_table()`), the tables concatenated (no copy), then one conversion
    with the connector's options: the least work that turns those files into one
    DataFrame (the connector converts each file and concatenates the frames)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_paths(where)
    if not files:
        raise SystemExit(f"no .parquet file in {where}")
    t0 = time.perf_counter()
    tables = [pq.read_table(f) for f in files]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    read = time.perf_counter() - t0
    frame = table.to_pandas(date_as_object=True, use_threads=False, split_blocks=False)
    seconds = time.perf_counter() - t0
    return {
        "rows": len(frame),
        "columns": list(frame.columns),
        "files": len(files),
        "bytes": sum(Path(f).stat().st_size for f in files),
        "read_seconds": round(read, 3),
        "seconds": round(seconds, 3),
        "rows_per_s": round(len(frame) / seconds) if seconds else None,
        "peak_rss_mb": peak_rss_mb(),
        "pyarrow": pa.__version__,
    }


def versions() -> dict:
    import delta_sharing
    import pandas
    import pyarrow

    return {
        "delta_sharing": getattr(delta_sharing, "__version__", "?"),
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "python": sys.version.split()[0],
    }


def main(argv: list[str]) -> None:
    command, *rest = argv
    if command == "load":
        out = load(*rest)
    elif command == "limit":
        out = limit(*rest)
    elif command == "versions":
        out = versions()
    else:
        raise SystemExit(f"unknown command {command!r}: load, limit, versions")
    print("SHARING_CLIENT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
