"""The PySpark job of ingestion runs, launched by `spark-submit` (never in the worker).

    spark-submit --master local[*] ingestion/jobs/spark_job.py \
        --source transactions --input /lake/landing/transactions/2026-11-20.jsonl \
        --stage ingest_stage_42 --dsn postgresql://... --rates rates.json --run-id 42
    spark-submit ... ingestion/jobs/spark_job.py --dsn postgresql://... --jobs runs.json

A batch of runs (the daily scan's files of one source) shares one Spark session, so
that the JVM starts once; each run prints its line as soon as it is staged, and the
worker merges it while the next file is read. With `--serve PIPE` the driver stays: each
line of the named pipe names a batch's file (`{"dsn": ..., "jobs": [...]}`), answered as
above and ended by `INGEST_BATCH_DONE`, until the pipe closes (ingestion/daily/spark.py
keeps one such driver per worker process: a batch does not pay the JVM's start).

It reads every line with its number, validates it with the source's parser (the
same code the Kafka consumer uses), drops in-file duplicates (the last one wins),
and COPYs, from each partition, the good rows into `<stage>` and the rejected
lines into `<stage>_rejects`. It prints one JSON line with the counts, the master and
the executors. The merge into the real table happens afterwards, in one transaction,
in the worker.

Nothing here assumes local mode: the executors (on other machines, with a standalone
master) read the input at its path (the lake, shared), import `ingestion` from the
`--py-files` zip and write to PostgreSQL through the DSN. A partition's COPY is
recorded in `<stage>_parts` in its own transaction: a task run again (its executor was
lost after the commit, or its map output with it) finds its partition done and reports
the counts stored, so no row is staged twice.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ARROW = {
    "varchar": pa.string(),
    "text": pa.string(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "integer": pa.int64(),
    "smallint": pa.int64(),
    "date": pa.date32(),
}


def arrow_type(pg_type: str) -> pa.DataType:
    if pg_type.endswith("[]"):
        return pa.list_(pa.string())
    if pg_type.startswith("numeric"):
        precision, scale = pg_type[8:-1].split(",")
        return pa.decimal128(int(precision), int(scale))
    return ARROW[pg_type.split("(")[0]]


def out_schema(source) -> pa.Schema:
    fields = [(n, arrow_type(t)) for n, t in source.columns]
    meta = [("line", pa.int64()), ("raw", pa.string()), ("reason", pa.string())]
    return pa.schema([*meta, ("fields", pa.string()), *fields])


def validate_batches(source, ctx, batches):
    """mapInArrow: (line, value) batches in, staged rows or rejects out."""
    from ingestion.validation import Rejected

    schema = out_schema(source)
    names = [n for n, _ in source.columns]
    for batch in batches:
        cols = {name: [] for name in schema.names}
        for line, raw in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            try:
                rows = source.parse(raw, ctx) if raw.strip() else None
                if rows is None:
                    raise Rejected("empty_line", "the line is empty")
            except Rejected as rejected:
                rows, reason = [dict.fromkeys(names)], rejected.reason
                fields = json.dumps(source.reject_fields(raw, ctx), default=_json_value)
            else:
                reason = fields = None
            for row in rows:
                cols["line"].append(line)
                cols["raw"].append(raw)
                cols["reason"].append(reason)
                cols["fields"].append(fields)
                for name in names:
                    cols[name].append(row[name])
        yield pa.record_batch(
            [pa.array(cols[n], type=schema.field(n).type) for n in schema.names], schema=schema
        )


def _pg_array(values) -> str | None:
    if values is None:
        return None
    inner = ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + inner + "}"


def copy_batches(source, dsn: str, stage: str, batches):
    """mapInArrow: COPY good rows into the stage and rejects into <stage>_rejects, once.

    The partition's counts go into `<stage>_parts` in the same transaction: another
    attempt of the same partition (a retried task, a map stage computed again after an
    executor was lost) stages nothing more and reports the counts of the one that
    committed. Two attempts at once: the second waits on the first's key."""
    import psycopg
    from pyspark import TaskContext

    part = TaskContext.get().partitionId()
    names = [n for n, _ in source.columns]
    arrays = [n for n, t in source.columns if t.endswith("[]")]
    # pg_stat_activity's application_name: which process (on client_addr's machine) writes
    # which partition of which stage.
    name = f"datalake pid {os.getpid()} part {part} {stage}"[:63]
    with psycopg.connect(dsn, application_name=name) as conn:
        done = _part_done(conn, stage, part)
        if done is None:
            good = bad = 0
            for batch in batches:
                table = pa.Table.from_batches([batch])
                ok = pc.is_null(table.column("reason"))
                rows = table.filter(ok).select(["line", *names])
                for column in arrays:
                    index = rows.schema.get_field_index(column)
                    literal = pa.array(
                        [_pg_array(v) for v in rows.column(column).to_pylist()], pa.string()
                    )
                    rows = rows.set_column(index, column, literal)
                rejects = reject_fields(table.filter(pc.invert(ok)), names)
                _copy(conn, f'"{stage}"', ["line", *names], rows)
                _copy(conn, f'"{stage}_rejects"', ["line", "raw", "reason", "fields"], rejects)
                good, bad = good + rows.num_rows, bad + rejects.num_rows
            recorded = conn.execute(
                f'INSERT INTO "{stage}_parts" (part, good, bad) VALUES (%s, %s, %s) '
                "ON CONFLICT (part) DO NOTHING",
                [part, good, bad],
            ).rowcount
            if recorded:
                conn.commit()
                done = (good, bad)
            else:  # another attempt committed this partition meanwhile: ours is undone
                conn.rollback()
                done = _part_done(conn, stage, part)
    for _ in batches:  # an attempt that found its partition done still reads its input
        pass
    yield pa.record_batch([pa.array([done[0]]), pa.array([done[1]])], names=["good", "bad"])


def _part_done(conn, stage: str, part: int) -> tuple[int, int] | None:
    row = conn.execute(f'SELECT good, bad FROM "{stage}_parts" WHERE part = %s', [part])
    return row.fetchone()


def _json_value(value) -> str:
    """Dates and times in ISO 8601, decimals as their exact text (as the API shows them)."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def reject_fields(rejects: pa.Table, names: list[str]) -> pa.Table:
    """line, raw, reason and the parsed fields (JSON) of each reject: a duplicate was
    parsed in full (its typed columns), a line that failed has what could be salvaged."""
    fields = rejects.column("fields").to_pylist()
    parsed = rejects.select(names).to_pylist()
    for i, found in enumerate(fields):
        if found is None:
            fields[i] = json.dumps(parsed[i], default=_json_value)
    data = rejects.select(["line", "raw", "reason"])
    return data.append_column("fields", pa.array(fields, pa.string()))


def _copy(conn, table: str, columns: list[str], data: pa.Table) -> None:
    if data.num_rows == 0:
        return
    buffer = io.BytesIO()
    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
    cols = ", ".join(f'"{c}"' for c in columns)
    with (
        conn.cursor() as cursor,
        cursor.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv)") as cp,
    ):
        cp.write(buffer.getvalue())


def numbered_lines(spark, path: str):
    """(line, value) for every line of the file, numbered from 1 in file order."""
    from pyspark.sql import functions as F

    lines = spark.read.text(path).select(
        F.spark_partition_id().alias("pid"),
        F.monotonically_increasing_id().alias("mid"),
        F.col("value"),
    )
    sizes = dict(lines.groupBy("pid").count().collect())
    offsets, total = {}, 0
    for pid in sorted(sizes):
        offsets[pid] = total
        total += sizes[pid]
    offset = F.element_at(
        F.create_map(*[F.lit(x) for kv in offsets.items() for x in kv]), F.col("pid")
    )
    local = F.col("mid") - F.shiftleft(F.col("pid").cast("long"), 33)
    numbered = lines.select((offset + local + 1).alias("line"), "value")
    return numbered, total


def dedup_last_wins(df, key: str):
    """In-file duplicates: the last line wins; the earlier ones become rejects."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    last = F.max(F.when(F.col("reason").isNull(), F.col("line"))).over(Window.partitionBy(key))
    duplicate = F.col("reason").isNull() & (F.col("line") < last)
    reason = F.concat(
        F.lit(f"duplicate_id: {key} "),
        F.col(key),
        F.lit(" appears again on line "),
        last.cast("string"),
        F.lit("; the last one wins"),
    )
    return df.withColumn("reason", F.when(duplicate, reason).otherwise(F.col("reason")))


def spark_session(app_name: str, partitions: int):
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(partitions))
        # How a file is split must not depend on how many executor cores have registered
        # when a query is planned: `numbered_lines` plans the scan twice (the partitions'
        # sizes, then the lines) and both must cut the file the same way.
        .config("spark.sql.leafNodeDefaultParallelism", str(partitions))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run(spark, job: dict, dsn: str) -> dict:
    """Validate and stage one file (one run); the session is shared by the runs of a batch."""
    from ingestion.rates import RateTable
    from ingestion.sources import SOURCES, Context, file_date

    source = SOURCES[job["source"]]
    with open(job["rates"]) as handle:
        rates = RateTable(json.load(handle))
    header = json.loads(job["header"]) if job.get("header") else None
    options = json.loads(job["options"]) if job.get("options") else {}
    ctx = Context(header=header, rates=rates, file_date=file_date(job["input"]), options=options)
    lines, total = numbered_lines(spark, job["input"])
    if source.has_header:
        lines = lines.where("line > 1")
    staged = lines.mapInArrow(
        lambda it: validate_batches(source, ctx, it), _spark_schema(out_schema(source))
    )
    if source.dedup_key:
        staged = dedup_last_wins(staged, source.dedup_key)
    stage = job["stage"]
    counts = (
        staged.mapInArrow(lambda it: copy_batches(source, dsn, stage, it), "good long, bad long")
        .groupBy()
        .sum("good", "bad")
        .collect()[0]
    )
    read = total - (1 if source.has_header else 0)
    rejected = int(counts[1] or 0)
    check_every_line_staged(dsn, stage, read)
    return {
        "rows_read": read,
        "rows_loaded": read - rejected,
        "rows_rejected": rejected,
        "rows_staged": int(counts[0] or 0),
    }


def check_every_line_staged(dsn: str, stage: str, read: int) -> None:
    """Every line of the file is in the stage or its rejects, or the run fails (a rerun
    stages it anew). On a cluster a task can end as if its input were complete when the
    input was cut (an executor lost upstream): its partition would be recorded short,
    and a retry would find it done. Here that is a clean failure, never a short load."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            f'SELECT count(DISTINCT line) FROM (SELECT line FROM "{stage}" '
            f'UNION ALL SELECT line FROM "{stage}_rejects") staged'
        ).fetchone()[0]
    if found != read:
        raise RuntimeError(
            f"{found:,} of the file's {read:,} lines were staged: a task's input was cut "
            "short (an executor lost); the run failed, run it again"
        )


def cluster_facts(spark, seen: int = 0) -> dict:
    """The master the job ran on and its executors: those registered now (or `seen`
    earlier, if more); in local mode 1, the driver's own."""
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        executors = 1
    else:  # the driver's block manager is in the map too
        executors = max(sc._jsc.sc().getExecutorMemoryStatus().size() - 1, seen)
    return {"spark_master": sc.master, "spark_executors": executors}


def _spark_schema(schema: pa.Schema) -> str:
    names = {
        pa.string(): "string",
        pa.int64(): "long",
        pa.date32(): "date",
        pa.timestamp("us", tz="UTC"): "timestamp",
    }
    parts = []
    for f in schema:
        if pa.types.is_decimal(f.type):
            spark_type = f"decimal({f.type.precision},{f.type.scale})"
        elif pa.types.is_list(f.type):
            spark_type = "array<string>"
        else:
            spark_type = names[f.type]
        parts.append(f"`{f.name}` {spark_type}")
    return ", ".join(parts)


def main(argv=None) -> int:
    """One run (--source, --input, --stage, --rates, --run-id), or several in one Spark
    session (--jobs: a JSON file of such objects), in order; a line per run on stdout:
    `INGEST_RESULT {"run-id": ..., counts, "spark_master", "spark_executors"}` or
    `INGEST_FAILED {"run-id": ..., "error"}`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("source", "input", "stage", "rates", "run-id"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--jobs", help="a JSON file: a list of runs")
    parser.add_argument("--dsn", help="required, except with --serve (each batch has its own)")
    parser.add_argument("--header", default="")
    parser.add_argument("--options", default="", help="JSON options of the source's parser")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--serve", metavar="PIPE", help="batches' files named on this pipe")
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.partitions)
    if not args.dsn:
        parser.error("--dsn is required")
    if args.jobs:
        with open(args.jobs) as handle:
            jobs = json.load(handle)
    else:
        omit = ("jobs", "dsn", "serve")
        jobs = [{k.replace("_", "-"): v for k, v in vars(args).items() if k not in omit}]
    spark = spark_session(f"ingest-{jobs[0]['source']}-{jobs[0]['run-id']}", args.partitions)
    run_batch(spark, jobs, args.dsn)
    spark.stop()
    return 0


def serve(requests: str, partitions: int) -> int:
    """A resident driver: one Spark session for batch after batch. Each line of the
    `requests` pipe names a file holding a batch (spark-submit does not hand its stdin
    to a Python application); the pipe's end (the worker let go, or died) stops it."""
    spark = spark_session("datalake-ingest", partitions)
    with open(requests) as pipe:
        while line := pipe.readline():
            if not line.strip():
                continue
            with open(line.strip()) as handle:
                batch = json.load(handle)
            os.unlink(line.strip())  # it holds the DSN: read once, gone
            if spark.sparkContext._jsc.sc().isStopped():  # e.g. its master lost while idle
                return 1  # not a word on this batch: the worker sends it to a new driver
            run_batch(spark, batch["jobs"], batch["dsn"])
            print("INGEST_BATCH_DONE", flush=True)
    spark.stop()
    return 0


def run_batch(spark, jobs: list[dict], dsn: str) -> None:
    """Each run of the batch in turn, its line printed as soon as it is staged."""
    for job in jobs:
        try:
            seen = cluster_facts(spark)["spark_executors"]
            result = run(spark, job, dsn)
            result.update(cluster_facts(spark, seen))
        except Exception as exc:  # this file failed; the next ones still go
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print("INGEST_FAILED " + json.dumps({"run-id": job["run-id"], "error": error[:2000]}),
                  flush=True)  # fmt: skip
            continue
        print("INGEST_RESULT " + json.dumps({"run-id": job["run-id"], **result}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
