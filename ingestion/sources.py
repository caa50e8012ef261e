"""The sources of DATA.md: how a line becomes staged rows, and the staging columns.

Pure Python (no Django, no Spark) so that the Spark executors, the Kafka consumer
and the tests share it. A parser takes `(raw line, context)` and returns a list
of rows (dicts) or raises `Rejected` with the reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from ingestion.rates import RateTable
from ingestion.validation import CENT, Rejected, parse_object, transaction_row, validate_sale

LONDON = ZoneInfo("Europe/London")
RETAIL_HEADER = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]


@dataclass(frozen=True)
class Source:
    """A source's staging columns `(name, postgres type)` and its line parser."""

    name: str
    columns: tuple[tuple[str, str], ...]
    parse: object
    has_header: bool = False
    dedup_key: str | None = None
    suffixes: tuple[str, ...] = field(default=(".jsonl", ".json", ".csv", ".csv.gz"))
    salvage: object = None  # (raw, ctx) -> the fields a rejected line still gives

    def reject_fields(self, raw: str, ctx: Context) -> dict:
        """The source's own fields of a rejected line, by staging column name, as far as
        they can be read (nothing else of the line: a reject keeps no foreign data)."""
        try:
            found = self.salvage(raw, ctx) if self.salvage and raw.strip() else {}
        except Exception:  # the line is broken in some other way: nothing can be read
            return {}
        names = {n for n, _ in self.columns}
        return {k: v for k, v in found.items() if k in names and _plain(v)}


@dataclass
class Context:
    """What a parser may need beyond the line: the file's header, rates, file date, options."""

    header: list[str] | None = None
    rates: RateTable | None = None
    file_date: dt.date | None = None
    options: dict = field(default_factory=dict)  # e.g. an HTTP source's `fields` mapping


def parse_transaction(raw: str, ctx: Context) -> list[dict]:
    return [transaction_row(parse_object(raw), ctx.rates)]


def parse_sale(raw: str, ctx: Context) -> list[dict]:
    row, reason = validate_sale(raw)
    if reason:
        code, _, message = reason.partition(": ")
        raise Rejected(code, message)
    return [{**row, "sale_date": ctx.file_date}]


def _csv_fields(raw: str, width: int) -> list[str]:
    try:
        fields = next(csv.reader(io.StringIO(raw)))
    except (csv.Error, StopIteration):
        raise Rejected("bad_csv", "not a CSV line") from None
    if len(fields) != width:
        raise Rejected("bad_csv", f"expected {width} fields, got {len(fields)}")
    return fields


def _retail_date(value: str) -> dt.datetime:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M"):
        try:
            local = dt.datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        return local.replace(tzinfo=LONDON).astimezone(dt.UTC)
    raise Rejected("bad_date", f"InvoiceDate is not a known date format: {value!r}")


def parse_retail(raw: str, ctx: Context) -> list[dict]:
    f = dict(zip(RETAIL_HEADER, _csv_fields(raw, 8), strict=True))
    if not f["InvoiceNo"].strip():
        raise Rejected("missing_invoice_no", "InvoiceNo is required")
    if not f["StockCode"].strip():
        raise Rejected("missing_field", "StockCode is required")
    try:
        quantity = int(f["Quantity"])
    except ValueError:
        raise Rejected(
            "bad_quantity", f"Quantity must be an integer, got {f['Quantity']!r}"
        ) from None
    try:
        price = Decimal(f["UnitPrice"])
    except InvalidOperation:
        raise Rejected(
            "bad_price", f"UnitPrice must be a decimal, got {f['UnitPrice']!r}"
        ) from None
    customer = f["CustomerID"].strip()
    if customer.endswith(".0"):
        customer = customer[:-2]
    return [
        {
            "invoice_no": f["InvoiceNo"].strip(),
            "stock_code": f["StockCode"].strip(),
            "description": f["Description"] or None,
            "quantity": quantity,
            "invoice_date": _retail_date(f["InvoiceDate"]),
            "unit_price": price,
            "customer_id": customer or None,
            "country": f["Country"],
        }
    ]


def _rate(value: str, where: str) -> Decimal | None:
    value = value.strip()
    if value in ("", "N/A"):
        return None
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise Rejected("bad_rate", f"{where}: not a number: {value!r}") from None
    if rate <= 0:
        raise Rejected("bad_rate", f"{where}: a rate must be positive, got {value}")
    return rate


def _iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise Rejected("bad_date", f"not an ISO date: {value!r}") from None


def parse_exchange_rates(raw: str, ctx: Context) -> list[dict]:
    """Both ECB formats: the wide history (`Date,USD,...,`) and the SDMX CSV export."""
    header = ctx.header or []
    fields = next(csv.reader(io.StringIO(raw)), [])
    if "TIME_PERIOD" in header:
        record = dict(zip(header, fields, strict=False))
        if record.get("CURRENCY_DENOM", "EUR") != "EUR":
            raise Rejected("bad_rate", "CURRENCY_DENOM must be EUR")
        rate = _rate(record.get("OBS_VALUE", ""), record.get("CURRENCY", "?"))
        day = _iso_date(record.get("TIME_PERIOD", ""))
        currency = record.get("CURRENCY", "")
        return [{"date": day, "currency": currency, "rate": rate}] if rate else []
    if not header or header[0] != "Date":
        raise Rejected("bad_header", "neither the ECB wide format nor the SDMX CSV export")
    day = _iso_date(fields[0] if fields else "")
    rows = []
    for currency, value in zip(header[1:], fields[1:], strict=False):
        rate = _rate(value, currency) if currency else None
        if rate is not None:
            rows.append({"date": day, "currency": currency, "rate": rate})
    return rows


# Column of `products` -> dotted path in a product object (an HTTP source's `field_map`
# overrides any of them). The defaults fit the fake e-commerce API of the seed.
PRODUCT_FIELDS = {
    "product_id": "id",
    "title": "title",
    "category": "category.name",
    "description": "description",
    "price_usd": "price",
}
PRODUCT_TEXT_LIMITS = {"product_id": 64, "category": 128}


def _dig(obj, path: str):
    for part in path.split(".") if path else ():
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _product_text(obj: dict, fields: dict, name: str, required: bool = False) -> str | None:
    value = _dig(obj, fields[name])
    if value is None or value == "":
        if required:
            raise Rejected("missing_field", f"{name} ({fields[name]}) is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Rejected("bad_type", f"{name} ({fields[name]}) must be a string, got {value!r}")
    value = str(value)
    limit = PRODUCT_TEXT_LIMITS.get(name)
    if limit and len(value) > limit:
        raise Rejected("bad_type", f"{name} is longer than {limit} characters")
    return value


def _product_price(obj: dict, fields: dict) -> Decimal:
    value = _dig(obj, fields["price_usd"])
    if value is None or value == "":
        raise Rejected("missing_field", f"price_usd ({fields['price_usd']}) is required")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Rejected("bad_price", f"the price must be a decimal number, got {value!r}")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise Rejected("bad_price", f"the price must be a decimal number, got {value!r}") from None
    if not price.is_finite() or price >= Decimal("1e12"):
        raise Rejected("bad_price", f"the price is out of range: {value!r}")
    if price < 0:
        raise Rejected("bad_price", f"the price must be 0 or more, got {value}")
    return price.quantize(CENT, ROUND_HALF_UP)


def parse_product(raw: str, ctx: Context) -> list[dict]:
    """One product object (as its HTTP API sent it): USD price, and the EUR price at the
    ECB rate of the file's date or of the latest earlier date that has one."""
    obj = parse_object(raw)
    fields = {**PRODUCT_FIELDS, **(ctx.options.get("fields") or {})}
    row = {
        "product_id": _product_text(obj, fields, "product_id", required=True),
        "title": _product_text(obj, fields, "title"),
        "category": _product_text(obj, fields, "category"),
        "description": _product_text(obj, fields, "description"),
        "price_usd": _product_price(obj, fields),
    }
    if ctx.file_date is None:
        raise Rejected("bad_date", "the file name starts with no date (YYYY-MM-DD) to pick a rate")
    found = ctx.rates.rate_on("USD", ctx.file_date) if ctx.rates else None
    if found is None:
        raise Rejected("unknown_currency", f"no ECB rate for USD on or before {ctx.file_date}")
    rate, row["rate_date"] = found
    row["price_eur"] = (row["price_usd"] / rate).quantize(CENT, ROUND_HALF_UP)
    return [row]


def _plain(value) -> bool:
    """A JSON scalar, or a list of them (a row filter compares scalars only)."""
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(v, scalar) for v in value)
    )


def _salvage_object(names: dict):
    """Fields of a JSON line: staging column <- dotted path in the object."""

    def salvage(raw: str, ctx: Context) -> dict:
        obj = parse_object(raw)
        paths = {**names, **(ctx.options.get("fields") or {})}
        return {n: _dig(obj, p) for n, p in paths.items() if _dig(obj, p) is not None}

    return salvage


RETAIL_COLUMNS = dict(
    zip(RETAIL_HEADER, ["invoice_no", "stock_code", "description", "quantity", "invoice_date",
                        "unit_price", "customer_id", "country"], strict=True)
)  # fmt: skip


def _salvage_retail(raw: str, ctx: Context) -> dict:
    fields = dict(zip(RETAIL_HEADER, _csv_fields(raw, 8), strict=True))
    found = {RETAIL_COLUMNS[k]: v.strip() for k, v in fields.items() if v.strip()}
    if "quantity" in found and found["quantity"].lstrip("-").isdigit():
        found["quantity"] = int(found["quantity"])  # as a good row has it (row filters)
    return found


TRANSACTION_FIELDS = (
    "transaction_id", "user_id", "timestamp", "transaction_type", "payment_method", "country",
    "product_id", "product_category", "quantity", "amount", "currency", "status",
    "customer_rating",
)  # fmt: skip

SOURCES = {
    "transactions": Source(
        "transactions",
        (
            ("transaction_id", "varchar(64)"),
            ("user_id", "varchar(64)"),
            ("timestamp", "timestamptz"),
            ("transaction_type", "varchar(32)"),
            ("payment_method", "varchar(32)"),
            ("country", "varchar(2)"),
            ("product_id", "varchar(64)"),
            ("product_category", "varchar(64)"),
            ("quantity", "integer"),
            ("amount", "numeric(16,2)"),
            ("currency", "varchar(3)"),
            ("amount_eur", "numeric(16,2)"),
            ("status", "varchar(16)"),
            ("customer_rating", "smallint"),
        ),
        parse_transaction,
        dedup_key="transaction_id",
        salvage=_salvage_object({n: n for n in TRANSACTION_FIELDS}),
        suffixes=(".jsonl", ".json", ".jsonl.gz", ".json.gz"),
    ),
    "sales": Source(
        "sales",
        (("sale_date", "date"), ("customer_id", "varchar(64)"), ("products", "varchar(64)[]")),
        parse_sale,
        salvage=_salvage_object({"customer_id": "Id", "products": "products"}),
        suffixes=(".json", ".jsonl", ".json.gz", ".jsonl.gz"),
    ),
    "retail": Source(
        "retail",
        (
            ("invoice_no", "varchar(32)"),
            ("stock_code", "varchar(32)"),
            ("description", "text"),
            ("quantity", "integer"),
            ("invoice_date", "timestamptz"),
            ("unit_price", "numeric(14,3)"),
            ("customer_id", "varchar(32)"),
            ("country", "varchar(64)"),
        ),
        parse_retail,
        has_header=True,
        salvage=_salvage_retail,
        suffixes=(".csv", ".csv.gz"),
    ),
    "exchange_rates": Source(
        "exchange_rates",
        (("date", "date"), ("currency", "varchar(3)"), ("rate", "numeric(18,6)")),
        parse_exchange_rates,
        has_header=True,
        suffixes=(".csv", ".csv.gz"),
    ),
    "products": Source(
        "products",
        (
            ("product_id", "varchar(64)"),
            ("title", "text"),
            ("category", "varchar(128)"),
            ("description", "text"),
            ("price_usd", "numeric(14,2)"),
            ("price_eur", "numeric(14,2)"),
            ("rate_date", "date"),
        ),
        parse_product,
        dedup_key="product_id",
        salvage=_salvage_object(PRODUCT_FIELDS),
        suffixes=(".jsonl", ".jsonl.gz"),
    ),
}


def file_date(path: str) -> dt.date | None:
    """The date in a daily file's name (`YYYY-MM-DD.json`), if any."""
    name = path.rsplit("/", 1)[-1]
    try:
        return dt.date.fromisoformat(name[:10])
    except ValueError:
        return None
