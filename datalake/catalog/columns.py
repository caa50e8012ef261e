"""Columns and the filter operators each type accepts."""

from __future__ import annotations

from dataclasses import dataclass

RANGE_OPS = ("eq", "gt", "gte", "lt", "lte", "in")
EQUALITY_OPS = ("eq", "in")
OPS_BY_TYPE = {
    "string": EQUALITY_OPS,
    "integer": RANGE_OPS,
    "decimal": RANGE_OPS,
    "date": RANGE_OPS,
    "timestamp": RANGE_OPS,
    "boolean": ("eq",),
    "array": (),
}


@dataclass(frozen=True)
class Column:
    """A column as the API shows it: name, type and the filter operators it accepts."""

    name: str
    type: str
    filters: tuple[str, ...] = ()
    description: str = ""
    nullable: bool = True

    def as_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "filters": list(self.filters)}


def column(
    name: str, col_type: str, filterable: bool = True, description: str = "", nullable: bool = True
) -> Column:
    """A column with every operator of its type, or none when not filterable."""
    ops = OPS_BY_TYPE[col_type] if filterable else ()
    return Column(name, col_type, ops, description, nullable)
