"""Raw-file resources: one `raw_<source>` per folder of `LAKE_ROOT/landing/`.

Known sources (DATA.md) have a declared schema so their raw values are typed
(a value that does not fit its type reads as null; the line's reject after
ingestion says why). A folder of an unknown source is served too, with its
columns taken from the files, all as strings.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from datalake.catalog.columns import OPS_BY_TYPE, Column

SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,90}$")
SUFFIXES = (".jsonl", ".json", ".csv", ".jsonl.gz", ".json.gz", ".csv.gz")

META_COLUMNS = (
    Column("_file", "string", ("eq", "in"), "File name inside the landing folder.", False),
    Column("_line", "integer", OPS_BY_TYPE["integer"], "Line number in the file.", False),
)

DECLARED = {
    "transactions": (
        ("transaction_id", "string"),
        ("user_id", "string"),
        ("timestamp", "timestamp"),
        ("transaction_type", "string"),
        ("payment_method", "string"),
        ("country", "string"),
        ("product_id", "string"),
        ("product_category", "string"),
        ("quantity", "integer"),
        ("amount", "decimal"),
        ("currency", "string"),
        ("status", "string"),
        ("customer_rating", "integer"),
    ),
    "sales": (("Id", "string"), ("products", "array")),
    "retail": (
        ("InvoiceNo", "string"),
        ("StockCode", "string"),
        ("Description", "string"),
        ("Quantity", "integer"),
        ("InvoiceDate", "string"),
        ("UnitPrice", "decimal"),
        ("CustomerID", "string"),
        ("Country", "string"),
    ),
}

DESCRIPTIONS = {
    "transactions": "Daily transaction files (JSON lines), as delivered.",
    "sales": "Daily sales dumps (JSON lines: Id, products), as delivered.",
    "retail": "UK online-retail CSV files, as delivered.",
    "exchange_rates": "ECB reference-rate CSV files (wide history and SDMX), as delivered.",
    "products": "Pages of the products HTTP API: one file per pull, one product per line.",
}


def landing_dir() -> Path:
    return Path(settings.LAKE_ROOT) / "landing"


def landing_sources() -> list[str]:
    """The landing folders whose name is a valid source name, sorted."""
    root = landing_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and SOURCE_NAME.match(p.name))


def folder_files(source: str) -> list[Path]:
    """The data files of a landing folder, in name (date) order; no subfolders, no links out."""
    folder = landing_dir() / source
    if not SOURCE_NAME.match(source) or not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.is_symlink() and p.name.endswith(SUFFIXES)
    )


def folder_schema(source: str) -> tuple[tuple[str, str], ...]:
    """(name, type) of the data columns of a folder: declared, or read from the files."""
    if source in DECLARED:
        return DECLARED[source]
    from datalake.catalog.rawfiles import inferred_columns

    return tuple((name, "string") for name in inferred_columns(source))


def describe(source: str) -> str:
    return DESCRIPTIONS.get(source, f"Raw files delivered to landing/{source}/, as delivered.")
