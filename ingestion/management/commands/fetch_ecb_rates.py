"""`python manage.py fetch_ecb_rates`: the latest ECB reference rates into the landing folder.

Downloads the ECB's rates (the SDMX CSV export of the last `--days` days, or with
`--history` the whole wide history file) into `landing/exchange_rates/`, where the
daily scan ingests them (or `--ingest` does it now). Without network access it says
how to drop the file there by hand, and exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import httpx
from django.core.management.base import BaseCommand, CommandError

from datalake.catalog.files import landing_dir

SDMX_URL = (
    "https://data-api.ecb.europa.eu/service/data/EXR/D..EUR.SP00.A"
    "?format=csvdata&startPeriod={start}"
)
HISTORY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip"
TIMEOUT = 30


def _csv_of(payload: bytes, url: str) -> bytes:
    """The CSV itself: unzipped when the ECB sends a zip (the history file)."""
    if payload[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            members = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            if not members:
                raise CommandError(f"{url}: the zip holds no CSV file")
            payload = archive.read(members[0])
    first = payload[:2000].decode("utf-8", "replace").lstrip("\ufeff").split("\n", 1)[0]
    if not (first.startswith("Date") or "TIME_PERIOD" in first):
        raise CommandError(f"{url}: not an ECB rates CSV (starts with {first[:80]!r})")
    return payload


class Command(BaseCommand):
    help = "Download the latest ECB euro reference rates into landing/exchange_rates/."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=14, help="Days of rates to fetch (default 14)."
        )
        parser.add_argument(
            "--history", action="store_true", help="The whole history (eurofxref-hist.zip)."
        )
        parser.add_argument("--url", help="Download from this URL instead (an ECB CSV or zip).")
        parser.add_argument(
            "--ingest", action="store_true", help="Ingest the file now, in this process."
        )

    def handle(self, days=14, history=False, url=None, ingest=False, **options):
        if days < 1:
            raise CommandError("--days must be 1 or more.")
        start = dt.date.today() - dt.timedelta(days=days)
        url = url or (HISTORY_URL if history else SDMX_URL.format(start=start.isoformat()))
        folder = landing_dir() / "exchange_rates"
        try:
            payload = self._download(url)
        except (httpx.HTTPError, OSError) as exc:
            reason = exc
            raise CommandError(self._offline_help(url, reason, folder)) from None
        target = self._land(_csv_of(payload, url), folder, "history" if history else "sdmx")
        self.stdout.write(f"landed {target} ({target.stat().st_size:,} bytes) from {url}")
        if ingest:
            from django.core.management import call_command

            call_command("ingest", "exchange_rates", str(target), inline=True, stdout=self.stdout)
        else:
            self.stdout.write(
                "The daily scan ingests it; now: python manage.py ingest exchange_rates "
                f"{target} --sync"
            )

    def _download(self, url: str) -> bytes:
        """The body of a 2xx answer; httpx speaks http(s) only (no `file://`)."""
        headers = {"Accept": "text/csv, application/zip"}
        with httpx.Client(timeout=TIMEOUT, follow_redirects=True, max_redirects=5) as client:
            response = client.get(url, headers=headers)
            response.raise_for_status()
            return response.content

    def _land(self, payload: bytes, folder: Path, kind: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        target = folder / f"ecb-{kind}-{now:%Y-%m-%dT%H%M%SZ}.csv"
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(payload)
        partial.rename(target)  # the scan never sees half a file
        return target

    @staticmethod
    def _offline_help(url: str, reason, folder: Path) -> str:
        return (
            f"Could not download the ECB reference rates from {url}: {reason}.\n"
            "To load them by hand, on a machine with internet access download either\n"
            f"  {HISTORY_URL}  (unzip it: eurofxref-hist.csv, every day since 1999), or\n"
            f"  {SDMX_URL.format(start='YYYY-MM-DD')}  (the days since then)\n"
            f"and copy the CSV into {folder}/ (any name ending in .csv). The daily scan "
            "ingests it at 02:00 UTC; to ingest it now:\n"
            "  python manage.py ingest exchange_rates landing/exchange_rates/<file>.csv --sync"
        )
