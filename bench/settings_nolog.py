"""The legacy scripts' name of `benchsite.settings_nolog`: without the request log."""

from benchsite.settings_nolog import *  # noqa: F403
