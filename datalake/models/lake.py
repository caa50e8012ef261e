"""The lake's tables (DATA.md), each served by the query API.

Versioned tables keep every version of a record: `valid_from` is the version that
wrote the row, `valid_to` the version that replaced it (NULL while current).
Reading the current version goes through partial indexes `WHERE valid_to IS NULL`,
so it costs the same as a table without history; reading version n selects
`valid_from <= n AND (valid_to IS NULL OR valid_to > n)`.
Each index that serves a filter ends with the table's key so that a filtered page
in key order, and the next cursor page, is one index range scan.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

CURRENT = Q(valid_to__isnull=True)


class VersionedRecord(models.Model):
    """Abstract base: the version columns every versioned table carries."""

    valid_from = models.PositiveIntegerField(default=1, help_text="Version that wrote this row.")
    valid_to = models.PositiveIntegerField(
        null=True, blank=True, help_text="Version that replaced this row; NULL while current."
    )

    class Meta:
        abstract = True


def current_index(table: str, *fields: str) -> models.Index:
    """A partial index on the current rows of a versioned table."""
    name = f"{table}_{fields[0]}_cur"[:30]
    return models.Index(fields=list(fields), name=name, condition=CURRENT)


def current_unique(table: str, *fields: str) -> models.UniqueConstraint:
    """At most one current row per key."""
    return models.UniqueConstraint(
        fields=list(fields), condition=CURRENT, name=f"{table}_key_current"[:30]
    )


def history_index(table: str, *fields: str) -> models.Index:
    """Key + version, for reading any version and for merges."""
    return models.Index(fields=[*fields, "valid_from"], name=f"{table}_key_hist"[:30])


# The fields of a transaction in DATA.md, in order (files, messages, re-pushes).
TRANSACTION_FIELDS = (
    "transaction_id",
    "user_id",
    "timestamp",
    "transaction_type",
    "payment_method",
    "country",
    "product_id",
    "product_category",
    "quantity",
    "amount",
    "currency",
    "status",
    "customer_rating",
)


class Transaction(VersionedRecord):
    """One transaction (DATA.md `transactions`), with `amount_eur` derived at load time."""

    transaction_id = models.CharField(max_length=64)
    user_id = models.CharField(max_length=64)
    timestamp = models.DateTimeField()
    transaction_type = models.CharField(max_length=32)
    payment_method = models.CharField(max_length=32)
    country = models.CharField(max_length=2)
    product_id = models.CharField(max_length=64)
    product_category = models.CharField(max_length=64, null=True, blank=True)
    quantity = models.IntegerField()
    amount = models.DecimalField(max_digits=16, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    amount_eur = models.DecimalField(max_digits=16, decimal_places=2)
    status = models.CharField(max_length=16)
    customer_rating = models.SmallIntegerField(null=True, blank=True)

    class Meta:
        db_table = "transactions"
        constraints = [current_unique("transactions", "transaction_id")]
        indexes = [
            history_index("transactions", "transaction_id"),
            # A merge's version: what it made current and what it closed (metrics deltas).
            models.Index(fields=["valid_from"], name="tx_valid_from"),
            models.Index(
                fields=["valid_to"], name="tx_valid_to", condition=Q(valid_to__isnull=False)
            ),
            *(
                current_index("tx", col, "transaction_id")
                for col in (
                    "country",
                    "payment_method",
                    "product_category",
                    "status",
                    "amount",
                    "customer_rating",
                    "timestamp",
                    "user_id",
                    "product_id",
                    "transaction_type",
                )
            ),
        ]


class Sale(VersionedRecord):
    """One line of a daily `sales` dump: a customer and the products on that line."""

    sale_date = models.DateField()
    line = models.PositiveIntegerField(help_text="Line number in the day's file (1-based).")
    customer_id = models.CharField(max_length=64)
    products = ArrayField(models.CharField(max_length=64))

    class Meta:
        db_table = "sales"
        constraints = [current_unique("sales", "sale_date", "line")]
        indexes = [
            history_index("sales", "sale_date", "line"),
            current_index("sales", "customer_id", "sale_date", "line"),
        ]


class ProductDailySales(models.Model):
    """Key-value view fed by `sales`: how often a product sold on a day (not versioned)."""

    product_id = models.CharField(max_length=64)
    date = models.DateField()
    times_sold = models.PositiveIntegerField()

    class Meta:
        db_table = "product_daily_sales"
        constraints = [
            models.UniqueConstraint(fields=["product_id", "date"], name="pds_key"),
        ]
        indexes = [models.Index(fields=["date", "product_id"], name="pds_date")]


class ExchangeRate(models.Model):
    """ECB reference rate: units of `currency` per 1 EUR on `date` (not versioned)."""

    date = models.DateField()
    currency = models.CharField(max_length=3)
    rate = models.DecimalField(max_digits=18, decimal_places=6)

    class Meta:
        db_table = "exchange_rates"
        constraints = [
            models.UniqueConstraint(fields=["currency", "date"], name="exchange_rates_key"),
        ]
        indexes = [models.Index(fields=["date", "currency"], name="exchange_rates_date")]


class RetailCustomer(VersionedRecord):
    """A customer of the UK online-retail data set."""

    customer_id = models.CharField(max_length=32)
    country = models.CharField(max_length=64)

    class Meta:
        db_table = "retail_customers"
        constraints = [current_unique("retail_customers", "customer_id")]
        indexes = [
            history_index("retail_customers", "customer_id"),
            current_index("rcust", "country", "customer_id"),
        ]


class RetailInvoice(VersionedRecord):
    """An invoice; `C` invoices are cancellations, `A` ones adjustments."""

    invoice_no = models.CharField(max_length=32)
    invoice_date = models.DateTimeField()
    customer_id = models.CharField(max_length=32, null=True, blank=True)
    country = models.CharField(max_length=64)
    cancelled = models.BooleanField(default=False)

    class Meta:
        db_table = "retail_invoices"
        constraints = [current_unique("retail_invoices", "invoice_no")]
        indexes = [
            history_index("retail_invoices", "invoice_no"),
            current_index("rinv", "customer_id", "invoice_no"),
            current_index("rinv", "invoice_date", "invoice_no"),
            current_index("rinv", "country", "invoice_no"),
        ]


class RetailInvoiceItem(VersionedRecord):
    """One line of an invoice; exact duplicate lines are kept as separate items."""

    invoice_no = models.CharField(max_length=32)
    line = models.PositiveIntegerField(help_text="Position of the item in its invoice (1-based).")
    stock_code = models.CharField(max_length=32)
    description = models.TextField(null=True, blank=True)
    quantity = models.IntegerField()
    unit_price = models.DecimalField(max_digits=14, decimal_places=3)

    class Meta:
        db_table = "retail_invoice_items"
        constraints = [current_unique("retail_invoice_items", "invoice_no", "line")]
        indexes = [
            history_index("retail_invoice_items", "invoice_no", "line"),
            current_index("ritem", "stock_code", "invoice_no", "line"),
        ]


class RetailStockCode(VersionedRecord):
    """A stock code with its latest description."""

    stock_code = models.CharField(max_length=32)
    description = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "retail_stock_codes"
        constraints = [current_unique("retail_stock_codes", "stock_code")]
        indexes = [history_index("retail_stock_codes", "stock_code")]
