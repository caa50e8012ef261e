"""Export a sealed range of the audit chain, verifiable offline by verify_audit --export."""

from __future__ import annotations

from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError

from datalake.errors import DomainError
from lineage.chain import export, keys
from lineage.management.commands.verify_audit import _instant


class Command(BaseCommand):
    help = (
        "Write the sealed requests of a range (JSON lines) with the signed checkpoints that "
        "cover it into a new folder; `verify_audit --export FOLDER` checks it anywhere."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, required=True, help="A new or empty folder.")
        parser.add_argument("--since", help="From the newest checkpoint at or before this.")
        parser.add_argument("--until", help="Up to the first checkpoint at or after this.")

    def handle(self, *args, **options):
        try:
            manifest = export.write(
                options["out"],
                since=_instant(options["since"], end=False),
                until=_instant(options["until"], end=True),
                verifying=keys.verifying_keys(),
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(orjson.dumps(manifest).decode())
