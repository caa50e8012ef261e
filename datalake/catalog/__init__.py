"""The catalog: what the lake holds, with columns, types and filter operators.

`get_entry(name)` is the one way to learn how to read a resource; the `Resource`
rows in the database mirror the entries so that grants and logs can point at them.
"""

from datalake.catalog.columns import Column
from datalake.catalog.entries import Entry, get_entry, list_entries

__all__ = ["Column", "Entry", "get_entry", "list_entries"]
