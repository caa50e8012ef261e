"""A request body is exactly its serializer's fields: any other key is a 400 naming it."""

from __future__ import annotations

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """A body with a key this serializer does not know is a 400 naming it, never ignored
    (a misspelt optional field would otherwise silently take its default)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)
