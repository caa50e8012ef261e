"""The report base class and its registry."""

from __future__ import annotations

from django.db import connection
from rest_framework import serializers

REGISTRY: dict[str, type[ReportType]] = {}


class ReportType:
    """Subclass, set `name`, `description`, `resources` (read with the requester's
    privileges), `Params` (a serializer: its JSON Schema is published) and `columns`,
    and implement `sql(params) -> (sql, args)` or `rows(params)`."""

    name: str = ""
    description: str = ""
    resources: tuple[str, ...] = ("transactions",)
    columns: tuple[str, ...] = ()
    Params: type[serializers.Serializer] = serializers.Serializer

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            REGISTRY[cls.name] = cls

    def sql(self, params: dict) -> tuple[str, list]:
        raise NotImplementedError

    def rows(self, params: dict):
        """The result rows as dicts, streamed from a server-side cursor."""
        sql, args = self.sql(params)
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            while batch := cursor.fetchmany(5000):
                for values in batch:
                    yield dict(zip(self.columns, values, strict=True))


def get_report_type(name: str) -> type[ReportType] | None:
    return REGISTRY.get(name)
