"""A report's parameters serializer as JSON Schema (for `reports/types/`)."""

from rest_framework import serializers

TYPES = {
    serializers.IntegerField: {"type": "integer"},
    serializers.FloatField: {"type": "number"},
    serializers.BooleanField: {"type": "boolean"},
    serializers.DateField: {"type": "string", "format": "date"},
}


def _field_schema(field) -> dict:
    if isinstance(field, serializers.ListField):
        schema = {"type": "array", "items": _field_schema(field.child)}
        if field.max_length:
            schema["maxItems"] = field.max_length
    elif isinstance(field, serializers.ChoiceField):
        schema = {"type": "string", "enum": list(field.choices)}
    else:
        schema = next((dict(s) for t, s in TYPES.items() if isinstance(field, t)), None)
        schema = schema or {"type": "string"}
        if isinstance(field, (serializers.IntegerField, serializers.FloatField)):
            if field.min_value is not None:
                schema["minimum"] = field.min_value
            if field.max_value is not None:
                schema["maximum"] = field.max_value
    if field.help_text:
        schema["description"] = str(field.help_text)
    default = getattr(field, "default", serializers.empty)
    if default is not serializers.empty:
        schema["default"] = default
    return schema


def params_json_schema(serializer_class) -> dict:
    fields = serializer_class().fields
    return {
        "type": "object",
        "properties": {name: _field_schema(f) for name, f in fields.items()},
        "required": [name for name, f in fields.items() if f.required],
        "additionalProperties": False,
    }
