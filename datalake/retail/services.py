"""Writes of the retail API: each one is the next version of its table.

A record is added the way every ingestion adds one: `datalake.lake.versions.version_lock`
takes the table's lock and next version number, the row goes through
`datalake.lake.merge.merge_versioned` from a one-row stage (so the version is recorded
with its source `api:<username>`, and the merge's hooks, such as the search index,
follow), all in one transaction. The checks run under the lock, so two requests
cannot both create the same customer, invoice or item line. Each write is also an
auditlog entry (actor, values, version) besides the request log's.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from auditlog.models import LogEntry
from django.db import connection, transaction

from datalake.errors import Invalid, NotFound
from datalake.lake.merge import merge_versioned
from datalake.lake.versions import version_lock
from datalake.models import RetailCustomer, RetailInvoice, RetailInvoiceItem, RetailStockCode
from datalake.retail import selectors


def _source(user) -> str:
    return f"api:{user.get_username()}"[:100]


def _add_record(model, key: tuple[str, ...], row: dict, user) -> int:
    """Merge `row` as a new current record of `model`'s table; the version made."""
    table = model._meta.db_table
    names = list(row)
    cols = ", ".join(f'"{n}"' for n in names)
    stage = f"api_stage_{table}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TEMP TABLE "{stage}" AS SELECT {cols} FROM {table} WITH NO DATA')
        cursor.execute(
            f'INSERT INTO "{stage}" ({cols}) VALUES ({", ".join(["%s"] * len(names))})',
            list(row.values()),
        )
    result = merge_versioned(
        table,
        table=table,
        key=list(key),
        columns=[n for n in names if n not in key],
        stage_table=stage,
        source=_source(user),
    )
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{stage}"')
    instance = model.objects.get(valid_to__isnull=True, **{k: row[k] for k in key})
    LogEntry.objects.log_create(
        instance,
        force_log=True,
        action=LogEntry.Action.CREATE,
        changes={name: [None, str(value)] for name, value in row.items()},
        actor=user,
        additional_data={"resource": table, "version": result.version},
    )
    return result.version


@transaction.atomic
def customer_create(*, customer_id: str, country: str, user) -> dict:
    """A new customer (400 if the id is taken); returns it with `version`."""
    version_lock("retail_customers")
    if selectors.customer_get(customer_id) is not None:
        raise Invalid({"customer_id": [f"Customer {customer_id} already exists."]})
    row = {"customer_id": customer_id, "country": country}
    return {**row, "version": _add_record(RetailCustomer, ("customer_id",), row, user)}


@transaction.atomic
def invoice_create(*, customer_id: str, invoice_no: str, invoice_date: dt.datetime, user) -> dict:
    """A new invoice of an existing customer (404 if unknown), in the customer's country."""
    customer = selectors.customer_get(customer_id)
    if customer is None:
        raise NotFound(f"No customer {customer_id}.")
    version_lock("retail_invoices")
    if selectors.invoice_get(invoice_no) is not None:
        raise Invalid({"invoice_no": [f"Invoice {invoice_no} already exists."]})
    row = {
        "invoice_no": invoice_no,
        "invoice_date": invoice_date,
        "customer_id": customer_id,
        "country": customer["country"],
        "cancelled": False,
    }
    return {**row, "version": _add_record(RetailInvoice, ("invoice_no",), row, user)}


@transaction.atomic
def invoice_item_add(
    *, invoice_no: str, stock_code: str, quantity: int, unit_price: Decimal, user
) -> dict:
    """A new last line of a live invoice, for a known stock code (with its description)."""
    invoice = selectors.invoice_get(invoice_no)
    if invoice is None:
        raise NotFound(f"No invoice {invoice_no}.")
    if invoice["cancelled"]:
        raise Invalid(
            {"invoice_no": [f"Invoice {invoice_no} is cancelled: no item can be added to it."]}
        )
    stock = RetailStockCode.objects.filter(stock_code=stock_code, valid_to__isnull=True)
    description = stock.values_list("description", flat=True)[:1]
    if not description:
        raise Invalid(
            {"stock_code": [f"Unknown stock code {stock_code!r}; items use known stock codes."]}
        )
    version_lock("retail_invoice_items")
    row = {
        "invoice_no": invoice_no,
        "line": selectors.invoice_last_line(invoice_no) + 1,
        "stock_code": stock_code,
        "description": description[0],
        "quantity": quantity,
        "unit_price": unit_price,
    }
    version = _add_record(RetailInvoiceItem, ("invoice_no", "line"), row, user)
    return {**row, "version": version}
