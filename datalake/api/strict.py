"""A request body is exactly its serializer's fields: any other key is a 400 naming it."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """A request body of exactly these fields: any other key is a 400 naming it."""

    # Refused rather than ignored: a misspelt optional field would silently take its
    # default. (The docstring above is every strict body's description in the schema.)
    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class StrictSerializerSchema(OpenApiSerializerExtension):
    """The schema says what the serializer does: `additionalProperties: false`."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema
