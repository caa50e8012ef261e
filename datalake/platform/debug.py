"""DEBUG's technical 500 page, bounded: never seconds of rendering for one error.

Django renders every frame of a traceback with its source lines and local variables;
a RecursionError has about a thousand frames, and rendering them took over 30 s, long
enough for gunicorn to kill the worker. Only the innermost frames of each exception
are shown: where it failed, and enough above it to see the repetition.
"""

from __future__ import annotations

from django.views.debug import ExceptionReporter


class BoundedExceptionReporter(ExceptionReporter):
    """At most `max_frames` frames per exception (the innermost ones)."""

    max_frames = 40

    def get_exception_traceback_frames(self, exc_value, tb):
        depth, walker = 0, tb
        while walker is not None:
            depth, walker = depth + 1, walker.tb_next
        for _ in range(depth - self.max_frames):
            tb = tb.tb_next
        return super().get_exception_traceback_frames(exc_value, tb)
