"""`python manage.py generate_sample_data --out DIR --days N --per-day M --seed S`."""

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ingestion.sample_data import DEMO_DAYS, DEMO_PER_DAY, generate


class Command(BaseCommand):
    help = "Write deterministic demo files for every source under DIR/<source>/."

    def add_arguments(self, parser):
        parser.add_argument("--out", default=None, help="Default: LAKE_ROOT/landing.")
        parser.add_argument("--days", type=int, default=DEMO_DAYS)
        parser.add_argument("--per-day", type=int, default=DEMO_PER_DAY)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--end-date",
            type=dt.date.fromisoformat,
            default=None,
            help="Last day (YYYY-MM-DD); default: today (UTC).",
        )

    def handle(
        self, out=None, days=DEMO_DAYS, per_day=DEMO_PER_DAY, seed=42, end_date=None, **options
    ):
        out_dir = Path(out) if out else Path(settings.LAKE_ROOT) / "landing"
        end = end_date or dt.datetime.now(dt.UTC).date()
        try:
            summary = generate(out_dir, days=days, per_day=per_day, seed=seed, end_date=end)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for source, info in summary.items():
            bad = sum(info["bad_lines"].values())
            self.stdout.write(
                f"{source}: {len(info['files'])} files, {info['lines']} lines, "
                f"{bad} bad lines planted"
            )
        self.stdout.write(f"written under {out_dir}")
