"""A run's status on the wire: the contract's words (API.md) for each kind.

The models share one vocabulary (`RunStatus`); the API keeps the words each kind was
documented with (a report `completed` or `error`, a re-push `pushed` or `processed`...).
Each kind's serializer declares its mapping once, with `RunStatusField`; the OpenAPI
enum lists the documented words.
"""

from __future__ import annotations

from rest_framework import serializers

from datalake.runs.models import RunStatus

# Kinds whose documented words are the model's own.
SAME_WORDS = {status: status for status in RunStatus.values}


class RunStatusField(serializers.ChoiceField):
    """The run's `status` as the kind's documented word (read only)."""

    def __init__(self, words: dict[str, str], **kwargs):
        missing = set(RunStatus.values) - set(words)
        self.words = {**{m: m for m in missing}, **words}
        kwargs["read_only"] = True
        super().__init__(choices=list(dict.fromkeys(words.values())), **kwargs)

    def to_representation(self, value):
        return self.words.get(value, value)


def wire_words(words: dict[str, str]) -> list[str]:
    """The documented words in their order (for `ENUM_NAME_OVERRIDES` and filters)."""
    return list(dict.fromkeys(words.values()))
