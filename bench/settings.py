"""The legacy scripts' settings name: `benchsite.settings` (bench/harness/site/benchsite)."""

from benchsite.settings import *  # noqa: F403
