"""Reads of the retail tables: current rows only (`valid_to IS NULL`), through their
partial unique indexes, so a lookup costs one index probe whatever the history."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Max

from datalake.models import RetailCustomer, RetailInvoice, RetailInvoiceItem, RetailStockCode

CENT = Decimal("0.01")
INVOICE_FIELDS = ("invoice_no", "invoice_date", "customer_id", "country", "cancelled")
ITEM_FIELDS = ("line", "stock_code", "description", "quantity", "unit_price")


def _one(queryset) -> dict | None:
    rows = list(queryset[:1])  # no ORDER BY: the key's unique index answers
    return rows[0] if rows else None


def customer_get(customer_id: str) -> dict | None:
    """`customer_id`, `country` of the current customer, or None."""
    return _one(
        RetailCustomer.objects.filter(customer_id=customer_id, valid_to__isnull=True).values(
            "customer_id", "country"
        )
    )


def customer_list():
    """Every current customer, by customer_id."""
    return (
        RetailCustomer.objects.filter(valid_to__isnull=True)
        .order_by("customer_id")
        .values("customer_id", "country")
    )


def customer_invoices(customer_id: str):
    """The customer's current invoices, oldest first."""
    return (
        RetailInvoice.objects.filter(customer_id=customer_id, valid_to__isnull=True)
        .order_by("invoice_date", "invoice_no")
        .values("invoice_no", "invoice_date", "cancelled")
    )


def invoice_get(invoice_no: str) -> dict | None:
    return _one(
        RetailInvoice.objects.filter(invoice_no=invoice_no, valid_to__isnull=True).values(
            *INVOICE_FIELDS
        )
    )


# The invoice and its items in one statement: the hot path of the retail API.
INVOICE_WITH_ITEMS_SQL = (
    "SELECT i.invoice_no, i.invoice_date, i.customer_id, i.country, i.cancelled, "
    "t.line, t.stock_code, t.description, t.quantity, t.unit_price "
    "FROM retail_invoices i LEFT JOIN retail_invoice_items t "
    "ON t.invoice_no = i.invoice_no AND t.valid_to IS NULL "
    "WHERE i.invoice_no = %s AND i.valid_to IS NULL ORDER BY t.line"
)


def invoice_with_items(invoice_no: str) -> tuple[dict, list[dict]] | None:
    """The current invoice and its current items in line order, or None."""
    with connection.cursor() as cursor:
        cursor.execute(INVOICE_WITH_ITEMS_SQL, [invoice_no])
        rows = cursor.fetchall()
    if not rows:
        return None
    invoice = dict(zip(INVOICE_FIELDS, rows[0][:5], strict=True))
    items = [dict(zip(ITEM_FIELDS, row[5:], strict=True)) for row in rows if row[5] is not None]
    return invoice, items


def invoice_items(invoice_no: str):
    """The invoice's current items in line order."""
    return (
        RetailInvoiceItem.objects.filter(invoice_no=invoice_no, valid_to__isnull=True)
        .order_by("line")
        .values(*ITEM_FIELDS)
    )


def invoice_item_get(invoice_no: str, line: int) -> dict | None:
    return _one(
        RetailInvoiceItem.objects.filter(
            invoice_no=invoice_no, line=line, valid_to__isnull=True
        ).values(*ITEM_FIELDS)
    )


def invoice_last_line(invoice_no: str) -> int:
    """The highest line the invoice ever had (closed versions too), 0 if none."""
    found = RetailInvoiceItem.objects.filter(invoice_no=invoice_no).aggregate(last=Max("line"))
    return found["last"] or 0


def invoice_total(items) -> Decimal:
    """Sum of quantity x unit price, to the cent (half up)."""
    total = sum((item["quantity"] * item["unit_price"] for item in items), Decimal(0))
    return total.quantize(CENT, ROUND_HALF_UP)


def stock_code_get(stock_code: str) -> dict | None:
    """The stock code with `invoices`: how many current invoices have an item of it."""
    found = _one(
        RetailStockCode.objects.filter(stock_code=stock_code, valid_to__isnull=True).values(
            "stock_code", "description"
        )
    )
    if found is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT invoice_no) FROM retail_invoice_items "
            "WHERE stock_code = %s AND valid_to IS NULL",
            [stock_code],
        )
        found["invoices"] = cursor.fetchone()[0]
    return found
