"""Verify the audit chain, or an export of it; exit 1 on any finding (cron, CI)."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError

from datalake.api.filtering import parse_instant
from datalake.errors import DomainError
from lineage.chain import export, keys, verify


class Command(BaseCommand):
    help = (
        "Recompute the audit chain from its trusted start against the stored seals and the "
        "signed checkpoints (or an export's, with --export, without a database) and print "
        "what GET /api/v1/audit/verify/ answers. Exits 1 on any finding."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="From the newest checkpoint at or before this.")
        parser.add_argument("--until", help="Up to the first checkpoint at or after this.")
        parser.add_argument("--export", type=Path, help="Verify this export_audit folder.")
        parser.add_argument(
            "--public-key", action="append", default=[],
            help="A public key (base64) to verify with instead of this machine's keys; repeat "
            "for former keys.",
        )  # fmt: skip
        parser.add_argument(
            "--print-public-key", action="store_true",
            help="Print the public key of AUDIT_SIGNING_KEY (for auditors, AUDIT_VERIFY_KEYS).",
        )  # fmt: skip

    def handle(self, *args, **options):
        if options["print_public_key"]:
            self.stdout.write(keys.public_text(keys.signing_key().public_key()))
            return
        try:
            verifying = keys.verifying_keys(options["public_key"])
            if options["export"]:
                report = export.check(options["export"], verifying=verifying)
            else:
                report = verify.database(
                    since=_instant(options["since"], end=False),
                    until=_instant(options["until"], end=True),
                    verifying=verifying,
                )
        except (ValueError, DomainError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
        if not report.ok:
            sys.exit(1)


def _instant(value: str | None, *, end: bool):
    if not value:
        return None
    try:
        return parse_instant(value, end=end)
    except ValueError:
        raise CommandError(f"Not a date or ISO timestamp: {value!r}") from None
