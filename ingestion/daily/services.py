"""Ingestion runs: start one, and execute it (checksum, Spark job, one-transaction merge)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import traceback
import uuid
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from datalake.errors import Invalid
from datalake.lake.merge import MAIN_TABLE, MERGES
from datalake.platform.db import vacuum_stale
from datalake.runs import lifecycle
from datalake.runs.lifecycle import RunBusy  # a live attempt holds a run of the batch
from ingestion.daily.spark import run_spark_jobs
from ingestion.models import IngestionRun, RunStatus
from ingestion.rates import RateTable
from ingestion.sources import SOURCES

logger = logging.getLogger(__name__)


def resolve_path(path: str, *, allow_outside: bool = False) -> Path:
    """The file a run reads: relative to LAKE_ROOT (or absolute, for the command line)."""
    root = Path(settings.LAKE_ROOT).resolve()
    candidate = Path(path)
    if candidate.is_absolute() and not allow_outside:
        raise Invalid({"path": ["Give a path relative to the lake root."]})
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not allow_outside and not resolved.is_relative_to(root):
        raise Invalid({"path": ["The path leaves the lake root."]})
    if not resolved.is_file():
        raise Invalid({"path": [f"No file at {path!r}."]})
    return resolved


def landing_file(source: str, path: str) -> Path:
    """The file at `path` if it lies directly in the source's own landing folder, links
    resolved. Its rejects are then lines of the source's raw-file resource, shown on the
    terms of that resource's grant: a path elsewhere (report outputs, model metadata,
    another source's files) would turn every line of any lake file into a reject."""
    resolved = resolve_path(path)
    folder = (Path(settings.LAKE_ROOT) / "landing" / source).resolve()
    if resolved.parent != folder:
        raise Invalid({"path": [f"A {source} run reads a file directly in landing/{source}/."]})
    return resolved


def in_landing_folder(source: str, display: str) -> bool:
    """Whether a run's stored path is a file directly in its source's landing folder."""
    root = Path(settings.LAKE_ROOT).resolve()
    path = Path(display)
    resolved = (path if path.is_absolute() else root / path).resolve()
    return resolved.parent == (root / "landing" / source).resolve()


def display_path(path: Path) -> str:
    root = Path(settings.LAKE_ROOT).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def ingestion_run_start(*, source: str, path: str, requested_by=None, cli: bool = False):
    """Queue a run of `source` on the file at `path`; the task starts after commit."""
    if source not in SOURCES:
        raise Invalid({"source": [f"Unknown source; one of {sorted(SOURCES)}."]})
    resolved = resolve_path(path, allow_outside=True) if cli else landing_file(source, path)
    if not resolved.name.endswith(SOURCES[source].suffixes):
        raise Invalid({"path": [f"A {source} file ends with {SOURCES[source].suffixes}."]})
    task_id = str(uuid.uuid4())  # known before the task starts: recovery finds its runs
    run = IngestionRun.objects.create(
        source=source, path=display_path(resolved), requested_by=requested_by, task_id=task_id
    )
    from ingestion.tasks import run_ingestion

    transaction.on_commit(lambda: run_ingestion.apply_async([run.pk], task_id=task_id))
    return run


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _progress(run: IngestionRun, **progress) -> None:
    lifecycle.update(run, progress={**run.progress, **progress, "at": timezone.now().isoformat()})


def _finish(run: IngestionRun, status: str, /, **fields) -> bool:
    """Record the outcome, if this attempt still holds the run (False: another took it)."""
    return lifecycle.finish(run, status, **fields)


def _claim(run: IngestionRun, task_id: str) -> bool:
    """Take the run for this attempt: not succeeded or skipped, and no live attempt holds
    it (a running run whose heartbeat stopped lost its worker). One UPDATE: two attempts
    never both take it."""
    return lifecycle.claim(run, task_id)


def recover_stalled_runs() -> list[int]:
    """Queue again the runs whose worker died, in one new batch, in their order.

    Stalled: `running` with a heartbeat older than INGESTION_STALL_SECONDS. With them
    go the runs still `queued` in the same batch (same task id: the dead worker held
    that message too). The old message, redelivered by the broker much later, finds
    them finished or held and does nothing twice.
    """
    try:
        drop_dead_stages()
    except Exception:  # housekeeping: the stalled runs are queued again all the same
        logger.exception("The sweep of dead ingestion stages failed")
    with transaction.atomic():
        stalled = list(IngestionRun.stalled().select_for_update(skip_locked=True))
        if not stalled:
            return []
        batches = {run.task_id for run in stalled if run.task_id}
        waiting = IngestionRun.objects.select_for_update(skip_locked=True).filter(
            status=RunStatus.QUEUED, task_id__in=batches
        )
        ids = sorted({run.pk for run in stalled} | set(waiting.values_list("pk", flat=True)))
        task_id = str(uuid.uuid4())
        IngestionRun.objects.filter(pk__in=ids).update(
            status=RunStatus.QUEUED, task_id=task_id, claim="", heartbeat_at=None
        )
        from ingestion.tasks import run_ingestion_batch

        transaction.on_commit(lambda: run_ingestion_batch.apply_async([ids], task_id=task_id))
    logger.warning("Ingestion runs %s had lost their worker: queued again", ids)
    return ids


def _already_loaded(run: IngestionRun) -> bool:
    return (
        IngestionRun.objects.filter(
            source=run.source, checksum=run.checksum, status=RunStatus.SUCCEEDED
        )
        .exclude(pk=run.pk)
        .exists()
    )


def ingestion_run_execute(run_id: int, task_id: str = "") -> IngestionRun:
    """Execute a run; safe to call again after a crash (the stage is per attempt).

    A failure at any point leaves the tables as they were: the merge is one
    transaction, and everything before it writes only to this attempt's stage.
    """
    return ingestion_runs_execute([run_id], task_id)[0]


def ingestion_runs_execute(run_ids: list[int], task_id: str = "") -> list[IngestionRun]:
    """Execute runs in order (what the daily scan queues: rates first, days in date order).

    Consecutive runs of one source share one Spark job (one JVM start) and are merged
    one by one, each in its own transaction, as soon as Spark has staged it, while
    Spark reads the next file. A source's rows are never merged before the runs ahead
    of them; a run of another source waits for the runs before it (the transactions
    of a day need the rates merged before them). Safe to call again after a crash:
    finished runs are left alone, the others start over with new stages.
    """
    runs = [IngestionRun.objects.get(pk=run_id) for run_id in run_ids]
    group: list[IngestionRun] = []
    for run in runs:
        if group and group[0].source != run.source:
            _execute_group(group, task_id)
            group = []
        group.append(run)
    if group:
        _execute_group(group, task_id)
    return [IngestionRun.objects.get(pk=run.pk) for run in runs]


def _execute_group(runs: list[IngestionRun], task_id: str) -> None:
    """Runs of one source: checksums, one Spark job for those to load, merges in order."""
    staged: dict[int, tuple[IngestionRun, str]] = {}
    try:
        with lifecycle.Heartbeat(IngestionRun) as heartbeat:
            for run in runs:
                if run.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED):
                    continue
                if not _claim(run, task_id):
                    raise RunBusy(run.pk)
                heartbeat.hold(run)
                stage = _start(run)
                if stage is not None:
                    staged[run.pk] = (run, stage)
            if staged:
                _spark_and_merge(list(staged.values()))
    except RunBusy:  # a live attempt holds a run: the ones after it must wait for it too
        for run, _stage in staged.values():
            lifecycle.release(run)
        raise
    except Exception as exc:  # before any run's own outcome (rates, the work folder...)
        logger.exception("Ingestion runs %s failed", [run.pk for run in runs])
        for run, _stage in staged.values():
            _finish(run, RunStatus.FAILED, error=_error_text(exc))  # if still running
    finally:
        for _run, stage in staged.values():
            _drop_stage(stage)


def _start(run: IngestionRun) -> str | None:
    """Checksum the claimed run's file; its stage, or None (skipped or failed)."""
    try:
        path = resolve_path(run.path, allow_outside=True)
        _progress(run, phase="checksum")
        run.checksum = file_checksum(path)
        lifecycle.update(run, checksum=run.checksum)
        if _already_loaded(run):
            _finish(run, RunStatus.SKIPPED, rows_read=0, rows_loaded=0, rows_rejected=0)
            return None
        drop_dead_stages(run.pk)  # what an earlier attempt of this run left
        stage = f"ingest_stage_{run.pk}_{secrets.token_hex(4)}"
        _create_stage(stage, SOURCES[run.source])
        return stage
    except Exception as exc:
        logger.exception("Ingestion run %s failed", run.pk)
        _finish(run, RunStatus.FAILED, error=_error_text(exc))
        return None


def _spark_and_merge(staged: list[tuple[IngestionRun, str]]) -> None:
    work = Path(settings.LAKE_ROOT) / "work" / "runs"
    work.mkdir(parents=True, exist_ok=True)
    rates = work / f"{staged[0][0].pk}-rates.json"
    rates.write_text(json.dumps(RateTable.from_database().as_data()))
    jobs, by_id = [], {}
    for run, stage in staged:
        try:  # a file that moved or cannot be read fails its own run only
            jobs.append(_job(run, stage, rates))
        except Exception as exc:
            logger.exception("Ingestion run %s failed", run.pk)
            _finish(run, RunStatus.FAILED, error=_error_text(exc))
            continue
        by_id[run.pk] = (run, stage)
        _progress(run, phase="spark")
    try:
        log_path = work / f"{staged[0][0].pk}-spark.log"
        for run_id, result in run_spark_jobs(jobs, _dsn(), work, log_path) if jobs else ():
            run, stage = by_id[run_id]
            try:
                if isinstance(result, Exception):
                    raise result
                _analyze_stage(stage)
                counts = {k: v for k, v in result.items() if k not in SPARK_FACTS}
                _progress(run, phase="merging", **counts)
                _merge(run, stage, result)
            except RunBusy:
                logger.warning("Ingestion run %s: another attempt holds it; not merged", run.pk)
                continue
            except Exception as exc:
                logger.exception("Ingestion run %s failed", run.pk)
                _finish(run, RunStatus.FAILED, error=_error_text(exc))
                continue
            finally:
                _drop_stage(stage)
            _after_commit_maintenance()
    finally:
        rates.unlink(missing_ok=True)


def _after_commit_maintenance() -> None:
    """The run succeeded and is recorded: a failure here is logged, never the run's."""
    try:
        vacuum_stale()  # the aggregates and entries the merge churned
    except Exception:
        logger.exception("Vacuum after an ingestion merge failed")


def _job(run: IngestionRun, stage: str, rates: Path) -> dict:
    source = SOURCES[run.source]
    path = resolve_path(run.path, allow_outside=True)
    header = _header(path) if source.has_header else None
    return {
        "source": run.source,
        "input": str(path),
        "stage": stage,
        "rates": str(rates),
        "run-id": run.pk,
        "header": json.dumps(header) if header else "",
        "options": json.dumps(_parser_options(run.source)),
    }


def _analyze_stage(stage: str) -> None:
    """Statistics of the staged rows, so that the merge joins them by index, not by hash
    over the whole table (autovacuum never sees a stage: it lives minutes)."""
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{stage}"')


def _error_text(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, Invalid) and "Spark job" not in text:
        text += "\n" + "".join(traceback.format_exception_only(exc)).strip()
    return text[:4000]


def _parser_options(source: str) -> dict:
    """What the parser takes from the source's declaration: an HTTP source's field map."""
    from ingestion.models import HttpSource

    declared = HttpSource.objects.filter(name=source).values_list("field_map", flat=True).first()
    return {"fields": declared} if declared else {}


def _header(path: Path) -> list[str]:
    import csv
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle), [])


SPARK_FACTS = ("spark_master", "spark_executors")  # where the job ran, in its result


def _spark_facts(result: dict) -> dict:
    """The master (without any user or password in its URL) and the executors."""
    master = str(result.get("spark_master") or "")
    scheme, sep, rest = master.rpartition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        master = f"{scheme}://{rest.split('@', 1)[1]}"
    return {"spark_master": master[:200], "spark_executors": result.get("spark_executors")}


def _merge(run: IngestionRun, stage: str, result: dict) -> None:
    spark = _spark_facts(result)
    with transaction.atomic():
        locked = IngestionRun.objects.select_for_update().get(pk=run.pk)
        if locked.claim != run.claim or locked.status != RunStatus.RUNNING:
            raise RunBusy(run.pk)  # this attempt was given up for dead: the other one merges
        if _already_loaded(locked):  # an identical file merged while this one ran
            _finish(run, RunStatus.SKIPPED, rows_read=0, rows_loaded=0, rows_rejected=0, **spark)
            return
        results = MERGES[run.source](stage, f"ingestion:{run.pk}")
        main = results[MAIN_TABLE[run.source]]
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ingestion_reject (run_id, line, raw, reason, fields) "
                f'SELECT %s, line, raw, reason, fields::jsonb FROM "{stage}_rejects" '
                "ORDER BY line",
                [run.pk],
            )
        _finish(
            run,
            RunStatus.SUCCEEDED,
            rows_read=result["rows_read"],
            rows_loaded=result["rows_loaded"],
            rows_rejected=result["rows_rejected"],
            rows_added=main.added,
            rows_changed=main.changed,
            version=main.version,
            progress={**run.progress, "phase": "done"},
            **spark,
        )


def _create_stage(stage: str, source) -> None:
    columns = ", ".join(f'"{n}" {t}' for n, t in source.columns)
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE UNLOGGED TABLE "{stage}" (line bigint, {columns})')
        cursor.execute(
            f'CREATE UNLOGGED TABLE "{stage}_rejects" '
            "(line bigint, raw text, reason text, fields text)"
        )
        # The partitions staged, each in the transaction of its COPY: a Spark task run
        # again (an executor lost) stages nothing twice (ingestion/jobs/spark_job.py).
        cursor.execute(
            f'CREATE UNLOGGED TABLE "{stage}_parts" '
            "(part integer PRIMARY KEY, good bigint NOT NULL, bad bigint NOT NULL)"
        )


def _drop_stage(stage: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{stage}", "{stage}_rejects", "{stage}_parts"')


STAGE = re.compile(r"^ingest_stage_([0-9]+)_[0-9a-f]{8}$")


def drop_dead_stages(claimed: int | None = None) -> list[str]:
    """Drop the stages no attempt will use again; the ones dropped.

    An attempt drops its own stage whatever its outcome, but a worker killed (or its
    machine lost) cannot: its unlogged tables would stay for good. Dead: the stages of
    a run that is not running (finished, or queued again after its worker was given up
    for dead), or with `claimed`, every stage of that run, which this attempt has just
    claimed and not yet staged into. A dead attempt that still runs (a paused machine)
    loses its stage and fails; it never merges. A drop that waits on a lock for more
    than 2 s is left for the next sweep (beat's recovery, every INGESTION_RECOVER_SECONDS).
    """
    prefix = "ingest\\_stage\\_" + (f"{claimed}\\_" if claimed is not None else "")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE %s"
            " AND relname ~ %s AND pg_table_is_visible(oid)",
            [prefix + "%", STAGE.pattern],
        )
        stages = {name: int(STAGE.match(name)[1]) for (name,) in cursor.fetchall()}
    if claimed is None:
        live = set(
            IngestionRun.objects.filter(
                pk__in=set(stages.values()), status=RunStatus.RUNNING
            ).values_list("pk", flat=True)
        )
        dead = [name for name, run_id in stages.items() if run_id not in live]
    else:
        dead = [name for name, run_id in stages.items() if run_id == claimed]
    dropped = []
    for stage in sorted(dead):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                cursor.execute(
                    f'DROP TABLE IF EXISTS "{stage}", "{stage}_rejects", "{stage}_parts"'
                )
                cursor.execute("SET LOCAL lock_timeout = DEFAULT")  # not for a caller's rest
        except DatabaseError:
            logger.warning("The dead ingestion stage %s is still locked: left", stage)
            continue
        dropped.append(stage)
    if dropped:
        logger.warning("Dropped the stages of dead ingestion attempts: %s", dropped)
    return dropped


def _dsn() -> str:
    db = settings.DATABASES["default"]
    parts = [
        f"host={db.get('HOST') or '127.0.0.1'}",
        f"port={db.get('PORT') or 5432}",
        f"dbname={connection.settings_dict['NAME']}",
        f"user={db.get('USER') or 'postgres'}",
    ]
    if db.get("PASSWORD"):
        parts.append(f"password={db['PASSWORD']}")
    return " ".join(parts)


SCAN_ORDER = ("exchange_rates", "transactions", "sales", "retail", "products")


def pending_files() -> list[tuple[str, Path]]:
    """Landing files not ingested yet (by content), rates first, each source in date order."""
    from datalake.catalog.files import folder_files

    done = set(
        IngestionRun.objects.exclude(status=RunStatus.FAILED).values_list("source", "checksum")
    )
    pending = []
    for source in SCAN_ORDER:
        for path in folder_files(source):
            ours = path.name.endswith(SOURCES[source].suffixes)
            if ours and (source, file_checksum(path)) not in done:
                pending.append((source, path))
    return pending


def scan_landing(*, requested_by=None) -> list[IngestionRun]:
    """Queue a run for every pending file; one task executes them one after another, in order
    (a redelivered batch skips the runs already finished)."""
    runs = [
        IngestionRun.objects.create(
            source=source, path=display_path(path), requested_by=requested_by
        )
        for source, path in pending_files()
    ]
    if runs:
        from ingestion.tasks import run_ingestion_batch

        ids, task_id = [run.pk for run in runs], str(uuid.uuid4())
        IngestionRun.objects.filter(pk__in=ids).update(task_id=task_id)  # the batch's runs
        transaction.on_commit(lambda: run_ingestion_batch.apply_async([ids], task_id=task_id))
    return runs
