"""The built-in tables: which model, key, filterable columns and versioning flag."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.contrib.postgres.fields import ArrayField
from django.db import models

from datalake.models.lake import TRANSACTION_FIELDS

# Columns the database keeps for its own use and the API never shows.
HIDDEN_COLUMNS = frozenset({"id", "valid_from", "valid_to"})

FIELD_TYPES = (
    (ArrayField, "array"),
    (models.BooleanField, "boolean"),
    (models.DateTimeField, "timestamp"),
    (models.DateField, "date"),
    (models.DecimalField, "decimal"),
    (models.IntegerField, "integer"),
    (models.CharField, "string"),
    (models.TextField, "string"),
)


@dataclass(frozen=True)
class TableSpec:
    """A lake table: its model, key (default order), filterable columns, versioning."""

    name: str
    model_label: str
    key: tuple[str, ...]
    filterable: frozenset[str]
    versioning: bool
    description: str

    def model(self) -> type[models.Model]:
        return apps.get_model(self.model_label)


TABLES = (
    TableSpec(
        "transactions",
        "datalake.Transaction",
        ("transaction_id",),
        frozenset(TRANSACTION_FIELDS) | {"amount_eur"},
        True,
        "Transactions from the daily files and the live pipeline, with amount_eur.",
    ),
    TableSpec(
        "sales",
        "datalake.Sale",
        ("sale_date", "line"),
        frozenset({"sale_date", "line", "customer_id"}),
        True,
        "One row per line of the daily sales dumps: a customer and its products.",
    ),
    TableSpec(
        "product_daily_sales",
        "datalake.ProductDailySales",
        ("product_id", "date"),
        frozenset({"product_id", "date", "times_sold"}),
        False,
        "How often each product sold each day (key-value view fed by sales).",
    ),
    TableSpec(
        "exchange_rates",
        "datalake.ExchangeRate",
        ("currency", "date"),
        frozenset({"currency", "date", "rate"}),
        False,
        "ECB euro reference rates: units of currency per 1 EUR.",
    ),
    TableSpec(
        "retail_customers",
        "datalake.RetailCustomer",
        ("customer_id",),
        frozenset({"customer_id", "country"}),
        True,
        "Customers of the UK online-retail data set.",
    ),
    TableSpec(
        "retail_invoices",
        "datalake.RetailInvoice",
        ("invoice_no",),
        frozenset({"invoice_no", "invoice_date", "customer_id", "country", "cancelled"}),
        True,
        "Invoices of the UK online-retail data set (C = cancelled, A = adjustment).",
    ),
    TableSpec(
        "retail_invoice_items",
        "datalake.RetailInvoiceItem",
        ("invoice_no", "line"),
        frozenset({"invoice_no", "line", "stock_code", "quantity", "unit_price"}),
        True,
        "Invoice lines of the UK online-retail data set, duplicates kept.",
    ),
    TableSpec(
        "retail_stock_codes",
        "datalake.RetailStockCode",
        ("stock_code",),
        frozenset({"stock_code"}),
        True,
        "Stock codes of the UK online-retail data set with their description.",
    ),
    TableSpec(
        "products",
        "ingestion.Product",
        ("product_id",),
        frozenset({"product_id", "category", "price_usd", "price_eur", "rate_date"}),
        True,
        "Product catalogue pulled from its HTTP API: USD price, EUR price and the ECB rate date.",
    ),
)
TABLES_BY_NAME = {spec.name: spec for spec in TABLES}


def column_type(field: models.Field) -> str:
    for field_class, name in FIELD_TYPES:
        if isinstance(field, field_class):
            return name
    raise TypeError(f"No catalog type for {field!r}")


def model_columns(model: type[models.Model]) -> list[tuple[str, str, bool]]:
    """(name, type, nullable) of every column the API shows, in model order."""
    return [
        (f.name, column_type(f), f.null)
        for f in model._meta.concrete_fields
        if f.name not in HIDDEN_COLUMNS
    ]


def field_help(model: type[models.Model], name: str) -> str:
    return str(model._meta.get_field(name).help_text or "")
