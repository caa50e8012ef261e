"""Replace a sealed request's body by a redaction marker (docs/AUDIT.md, "Redaction")."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from datalake.errors import DomainError
from lineage.chain import redaction


class Command(BaseCommand):
    help = (
        'Replace the body of a sealed stored request by {"_redacted": {at, reason}}; the '
        "chain still verifies (its seal keeps the body's digest) and counts the redaction."
    )

    def add_arguments(self, parser):
        parser.add_argument("log_id", type=int, help="The stored request's id.")
        parser.add_argument("--reason", required=True, help="Why (kept in the marker).")

    def handle(self, *args, **options):
        try:
            redaction.redact(options["log_id"], options["reason"])
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"request {options['log_id']}: body redacted")
