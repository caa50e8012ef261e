"""`python manage.py run_pipeline`: the consumer of `transactions.raw`."""

import logging
import signal

from django.core.management.base import BaseCommand

from ingestion.stream.consumer import PipelineConsumer
from ingestion.stream.kafka import ensure_topics

logger = logging.getLogger("ingestion.stream.consumer")


class Command(BaseCommand):
    help = "Consume transactions.raw and merge micro-batches into transactions (Ctrl-C stops)."

    def add_arguments(self, parser):
        parser.add_argument("--group", default=None, help="Consumer group (default: settings).")
        # Under a backlog a bigger batch costs less a message (its aggregates group more
        # rows); a live trickle makes small batches anyway (what arrived within --poll).
        parser.add_argument("--batch-size", type=int, default=50_000)
        parser.add_argument("--poll", type=float, default=0.5, help="Seconds to wait for a batch.")

    def handle(self, group=None, batch_size=50_000, poll=0.5, **options):
        ensure_topics()
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        consumer = PipelineConsumer(group=group, batch_size=batch_size, poll=poll)
        # Log lines, not stdout: the process's output is JSON lines only (LOG_FORMAT).
        logger.info("pipeline: consuming %s as group %s", consumer.topic, group or "default")
        consumer.run(should_stop=lambda: bool(stopping))
        logger.info("pipeline: stopped")
