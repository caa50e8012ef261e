"""`python manage.py run_followers`: derive the search entries and metrics aggregates of
committed versions (datalake.lake.followers), until stopped (SIGTERM, Ctrl-C)."""

import logging
import signal

from django.core.management.base import BaseCommand, CommandError

from datalake.lake import followers

logger = logging.getLogger("datalake.lake.followers")


class Command(BaseCommand):
    help = "Run the followers (search index, metrics aggregates) until stopped."

    def add_arguments(self, parser):
        parser.add_argument(
            "--only", default="", help="Comma-separated followers to run (default: all)."
        )
        parser.add_argument(
            "--once", action="store_true", help="Catch up once, then exit (no waiting)."
        )

    def handle(self, only="", once=False, **options):
        names = [n for n in only.split(",") if n] or list(followers.REGISTRY)
        unknown = sorted(set(names) - set(followers.REGISTRY))
        if unknown:
            raise CommandError(f"unknown followers {unknown}; known: {sorted(followers.REGISTRY)}")
        if once:
            applied = followers.catch_up(names)
            logger.info("followers: caught up (%s version(s) derived)", applied)
            return
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        logger.info("followers: running %s", ", ".join(names))
        followers.run(names, should_stop=lambda: bool(stopping))
        logger.info("followers: stopped")
