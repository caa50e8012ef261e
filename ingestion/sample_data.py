"""Deterministic demo data for every source of DATA.md (standard library only, no Django).

`generate(out_dir, days=..., per_day=..., seed=..., end_date=...)` writes, for the days
D1..Dn ending at `end_date`:

* `transactions/YYYY-MM-DD.jsonl`: `per_day` good lines a day, a few planted bad lines
  of every kind in `TRANSACTION_BAD_KINDS`, and on the last day `CORRECTIONS` valid
  re-deliveries of earlier transactions with a changed amount;
* `sales/YYYY-MM-DD.json`: `per_day` good lines a day plus the `SALES_BAD_KINDS`;
* `retail/retail_sample.csv`: the UCI Online Retail format, `per_day` good rows a day
  (cancellations, an adjustment, duplicates and odd descriptions included) plus the
  `RETAIL_BAD_KINDS`;
* `exchange_rates/eurofxref-hist.csv`: the ECB wide history format for the business
  days from `RATE_LEAD_DAYS` days before D1 to `end_date`.

The same arguments always give byte-identical files: every random choice comes from a
`random.Random` seeded with a string built from `seed` (never the global generator, never
the clock). The bad kinds are the rejection codes of the ingestion (`validation.py`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import math
import pathlib
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

SOURCES = ("transactions", "sales", "retail", "exchange_rates")
TRANSACTION_BAD_KINDS = (
    "invalid_json",
    "missing_field",
    "bad_type",
    "bad_quantity",
    "negative_amount",
    "bad_status",
    "bad_country",
    "bad_timestamp",
    "unknown_currency",
    "bad_rating",
    "duplicate_id",
)
SALES_BAD_KINDS = ("invalid_json", "missing_products", "products_not_list", "missing_id")
RETAIL_BAD_KINDS = ("bad_quantity", "bad_date", "missing_invoice_no")
BAD_KINDS = {
    "transactions": TRANSACTION_BAD_KINDS,
    "sales": SALES_BAD_KINDS,
    "retail": RETAIL_BAD_KINDS,
    "exchange_rates": (),
}
MIN_PER_DAY = 10
# What `make demo` writes (generate_sample_data's defaults), ending today: 29 whole days
# before today are what the product-demand model needs to train its boosted estimator
# with its 14 held-back days (today is not over and is not learnt from).
DEMO_DAYS = 30
DEMO_PER_DAY = 500
MAX_PER_DAY = 900_000  # transaction ids have 6 digits
CORRECTIONS = 3
RATE_LEAD_DAYS = 10
RETAIL_FILE = "retail/retail_sample.csv"
RATES_FILE = "exchange_rates/eurofxref-hist.csv"
RETAIL_HEADER = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)

USERS = 2000
PRODUCTS = 300
CENT = Decimal("0.01")
CATEGORIES = {  # category: EUR price range of its products
    "electronics": (20, 900),
    "books": (5, 45),
    "clothing": (10, 150),
    "home": (8, 300),
    "toys": (5, 80),
    "grocery": (1, 40),
    "sports": (10, 250),
    "beauty": (4, 90),
}
COUNTRIES = (
    ("FR", 22),
    ("DE", 20),
    ("ES", 10),
    ("IT", 10),
    ("NL", 6),
    ("BE", 5),
    ("PT", 3),
    ("GB", 9),
    ("US", 7),
    ("CH", 3),
    ("PL", 3),
    ("SE", 2),
    ("JP", 1),
)
HOME_CURRENCY = {"GB": "GBP", "US": "USD", "CH": "CHF", "PL": "PLN", "SE": "SEK", "JP": "JPY"}
TRANSACTION_TYPES = (("online", 45), ("in_store", 25), ("mobile", 25), ("subscription", 5))
PAYMENT_METHODS = (("card", 55), ("paypal", 20), ("bank_transfer", 10), ("cash", 8), ("voucher", 7))
STATUSES = (("completed", 80), ("pending", 8), ("failed", 5), ("refunded", 4), ("cancelled", 3))
QUANTITIES = ((1, 60), (2, 20), (3, 10), (4, 6), (5, 4))
RATINGS = ((1, 5), (2, 7), (3, 15), (4, 35), (5, 38))

# ECB-style columns: (currency, starting rate per 1 EUR, daily volatility); None = always N/A.
RATE_COLUMNS = (
    ("USD", 1.0850, 0.004),
    ("JPY", 162.35, 0.005),
    ("BGN", 1.9558, 0.0),
    ("CZK", 25.210, 0.002),
    ("DKK", 7.4590, 0.0001),
    ("GBP", 0.85420, 0.003),
    ("HUF", 395.20, 0.004),
    ("PLN", 4.3150, 0.003),
    ("RON", 4.9730, 0.001),
    ("SEK", 11.285, 0.004),
    ("CHF", 0.94100, 0.003),
    ("ISK", None, 0.0),
    ("NOK", 11.620, 0.004),
    ("AUD", 1.6480, 0.004),
    ("CAD", 1.4790, 0.004),
)
APPROX_RATE = {name: Decimal(str(start)) for name, start, _ in RATE_COLUMNS if start}


# --------------------------------------------------------------------------- helpers


@dataclass
class _Report:
    """What `generate` says about one source."""

    files: list[str] = field(default_factory=list)
    lines: int = 0
    bad_lines: Counter = field(default_factory=Counter)

    def add(self, relpath: str, lines: int, bad: Counter) -> None:
        self.files.append(relpath)
        self.lines += lines
        self.bad_lines.update(bad)

    def as_dict(self) -> dict:
        return {
            "files": list(self.files),
            "lines": self.lines,
            "bad_lines": {kind: self.bad_lines[kind] for kind in sorted(self.bad_lines)},
        }


def _rng(seed: int, *parts: object) -> random.Random:
    """An independent generator for one part of the data (str seeds hash stably)."""
    return random.Random("/".join([str(seed), *map(str, parts)]))


def _pick(rng: random.Random, table):
    """One value of a `((value, weight), ...)` table."""
    return rng.choices([value for value, _ in table], weights=[w for _, w in table])[0]


def _write(out_dir: pathlib.Path, relpath: str, text: str) -> None:
    path = out_dir / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _lines_text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _dumps(record: dict) -> str:
    """JSON of a record; Decimals become numbers written as they are (`12.50`)."""
    parts = [f"{json.dumps(key)}: {_json_value(value)}" for key, value in record.items()]
    return "{" + ", ".join(parts) + "}"


def _json_value(value) -> str:
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _interleave(rng: random.Random, good: list[str], extras: list[tuple[int, str]]) -> list[str]:
    """`good` in order, each extra `(limit, line)` put at a random place before good[limit]."""
    keyed = [(float(i), 0, line) for i, line in enumerate(good)]
    for n, (limit, line) in enumerate(extras, start=1):
        keyed.append((rng.uniform(-0.5, limit - 0.5), n, line))
    return [line for _, _, line in sorted(keyed)]


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Product:
    """A product of the transactions and sales: a fixed category and EUR unit price."""

    product_id: str
    category: str
    price: Decimal


@dataclass(frozen=True)
class Catalog:
    """Users (id, home country) and products shared by transactions and sales."""

    users: tuple[tuple[str, str], ...]
    products: tuple[Product, ...]
    popularity: tuple[float, ...]  # cumulative weights of `products`

    def product(self, rng: random.Random, k: int = 1) -> list[Product]:
        return rng.choices(self.products, cum_weights=self.popularity, k=k)


def _product(rng: random.Random, number: int) -> Product:
    category = rng.choice(sorted(CATEGORIES))
    low, high = CATEGORIES[category]
    price = math.exp(rng.uniform(math.log(low), math.log(high)))
    cents = rng.choice(("0.99", "0.49", "0.00"))
    return Product(f"P{number:04d}", category, Decimal(int(price)) + Decimal(cents))


def make_catalog(seed: int) -> Catalog:
    """The ~2000 users and ~300 products of a seed (the same for every day)."""
    rng = _rng(seed, "catalog")
    users = tuple((f"U{n:05d}", _pick(rng, COUNTRIES)) for n in range(1, USERS + 1))
    products = tuple(_product(rng, n) for n in range(1, PRODUCTS + 1))
    ranks = list(range(1, PRODUCTS + 1))
    rng.shuffle(ranks)
    weights = [1 / rank**0.9 for rank in ranks]
    return Catalog(users, products, tuple(itertools.accumulate(weights)))


# --------------------------------------------------------------------------- transactions


def _timestamp(rng: random.Random, day: dt.date) -> str:
    moment = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rng.randrange(86400))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _currency(rng: random.Random, country: str) -> str:
    home = HOME_CURRENCY.get(country, "EUR")
    return "EUR" if home != "EUR" and rng.random() < 0.1 else home


def _amount(rng: random.Random, product: Product, quantity: int, currency: str) -> Decimal:
    total = product.price * quantity
    if rng.random() < 0.1:
        total *= Decimal("0.9")
    total *= APPROX_RATE.get(currency, Decimal(1))
    return total.quantize(CENT, ROUND_HALF_UP)


def _payment(rng: random.Random, transaction_type: str) -> str:
    method = _pick(rng, PAYMENT_METHODS)
    return "card" if method == "cash" and transaction_type != "in_store" else method


def _rating(rng: random.Random, status: str) -> int | None:
    if status != "completed" or rng.random() < 0.45:
        return None
    return _pick(rng, RATINGS)


def _drop_optionals(rng: random.Random, record: dict) -> None:
    """~5% of lines have no category (absent or null); ~3% of EUR lines no currency."""
    if rng.random() < 0.05:
        if rng.random() < 0.5:
            del record["product_category"]
        else:
            record["product_category"] = None
    if record["currency"] == "EUR" and rng.random() < 0.03:
        del record["currency"]


def _transaction(rng: random.Random, catalog: Catalog, day: dt.date, tx_id: str) -> dict:
    """One valid transaction of `day`, its fields in DATA.md order."""
    user_id, country = rng.choice(catalog.users)
    product = catalog.product(rng)[0]
    transaction_type = _pick(rng, TRANSACTION_TYPES)
    quantity = _pick(rng, QUANTITIES)
    currency = _currency(rng, country)
    status = _pick(rng, STATUSES)
    record = {
        "transaction_id": tx_id,
        "user_id": user_id,
        "timestamp": _timestamp(rng, day),
        "transaction_type": transaction_type,
        "payment_method": _payment(rng, transaction_type),
        "country": country,
        "product_id": product.product_id,
        "product_category": product.category,
        "quantity": quantity,
        "amount": _amount(rng, product, quantity, currency),
        "currency": currency,
        "status": status,
        "customer_rating": _rating(rng, status),
    }
    _drop_optionals(rng, record)
    return record


def _good_transactions(rng, catalog, day, ids: list[str]) -> list[dict]:
    """Valid transactions of `day` in time order, ids increasing with time."""
    records = [_transaction(rng, catalog, day, "") for _ in ids]
    records.sort(key=lambda record: record["timestamp"])
    for record, tx_id in zip(records, ids, strict=True):
        record["transaction_id"] = tx_id
    return records


def _break_transaction(kind: str, rng: random.Random, record: dict) -> str:
    """The line of `record` with exactly one defect of `kind` (not `duplicate_id`)."""
    if kind == "invalid_json":
        text = _dumps(record)
        return text.replace('"', "'") if rng.random() < 0.3 else text[: rng.randrange(5, 60)]
    bad = dict(record)
    if kind == "missing_field":
        del bad[rng.choice(("user_id", "product_id", "timestamp", "payment_method", "status"))]
    elif kind == "bad_type":
        key, value = rng.choice((("quantity", "three"), ("quantity", "2"), ("user_id", 1234)))
        bad[key] = value
    else:
        bad.update(_BREAKERS[kind](rng, record))
    return _dumps(bad)


_BREAKERS = {
    "bad_quantity": lambda rng, r: {"quantity": rng.choice((0, -1))},
    "negative_amount": lambda rng, r: {"amount": -r["amount"]},
    "bad_status": lambda rng, r: {"status": rng.choice(("shipped", "COMPLETED", "done"))},
    "bad_country": lambda rng, r: {"country": rng.choice(("France", "Deutschland", "UK", "fr"))},
    "bad_timestamp": lambda rng, r: {
        "timestamp": rng.choice((r["timestamp"][:-1], "yesterday", r["timestamp"][:10]))
    },
    "unknown_currency": lambda rng, r: {"currency": rng.choice(("XXX", "ISK"))},
    "bad_rating": lambda rng, r: {"customer_rating": rng.choice((0, 6, 7, 10))},
}


def _stale_copy(record: dict) -> str:
    """An earlier, superseded delivery of `record` (same id): it was still pending."""
    stale = dict(record)
    if record["status"] == "pending":
        stale["amount"] = (record["amount"] * Decimal("1.1")).quantize(CENT, ROUND_HALF_UP)
    else:
        stale["status"] = "pending"
        stale["customer_rating"] = None
    return _dumps(stale)


def _corrections(rng: random.Random, earlier: list[dict]) -> list[dict]:
    """`CORRECTIONS` earlier transactions re-delivered with a changed amount."""
    corrected = []
    for record in rng.sample(earlier, min(CORRECTIONS, len(earlier))):
        factor = Decimal(rng.choice(("0.5", "0.8", "0.9", "1.1", "1.25")))
        new = dict(record, amount=(record["amount"] * factor).quantize(CENT, ROUND_HALF_UP))
        if new["amount"] == record["amount"]:
            new["amount"] += Decimal(1)
        corrected.append(new)
    return corrected


def _transaction_day(rng, catalog, day, per_day, earlier) -> tuple[list[str], list[dict], Counter]:
    """The lines of one day's file, its good records and its bad-line counts."""
    counts = {kind: rng.randint(1, 2) for kind in TRANSACTION_BAD_KINDS}
    n_bad = sum(counts.values()) - counts["duplicate_id"]
    numbers = rng.sample(range(1, 1_000_000), per_day + n_bad)
    ids = [f"TX-{day:%Y%m%d}-{n:06d}" for n in numbers]
    good = _good_transactions(rng, catalog, day, sorted(ids[:per_day]))
    spare = iter(ids[per_day:])
    extras = []
    for kind in TRANSACTION_BAD_KINDS[:-1]:
        for _ in range(counts[kind]):
            record = _transaction(rng, catalog, day, next(spare))
            extras.append((per_day, _break_transaction(kind, rng, record)))
    for target in rng.sample(range(per_day), counts["duplicate_id"]):
        extras.append((target, _stale_copy(good[target])))
    extras += [(per_day, _dumps(record)) for record in _corrections(rng, earlier)]
    lines = _interleave(rng, [_dumps(record) for record in good], extras)
    return lines, good, Counter(counts)


def _generate_transactions(out_dir, dates, per_day, seed, catalog) -> dict:
    report = _Report()
    earlier: list[dict] = []
    for day in dates:
        rng = _rng(seed, "transactions", day.isoformat())
        last = day == dates[-1]
        lines, good, bad = _transaction_day(rng, catalog, day, per_day, earlier if last else [])
        relpath = f"transactions/{day.isoformat()}.jsonl"
        _write(out_dir, relpath, _lines_text(lines))
        report.add(relpath, len(lines), bad)
        earlier += good
    return report.as_dict()


# --------------------------------------------------------------------------- sales


def _sale(rng: random.Random, catalog: Catalog) -> dict:
    """One sales line: a customer id (number or string) and 1..6 products."""
    number = rng.randint(1, USERS)
    products = [product.product_id for product in catalog.product(rng, rng.randint(1, 6))]
    if len(products) > 1 and rng.random() < 0.15:
        products[rng.randrange(1, len(products))] = products[0]
    return {"Id": number if rng.random() < 0.6 else str(number), "products": products}


def _break_sale(kind: str, rng: random.Random, sale: dict) -> str:
    """The line of `sale` with one defect of `kind`."""
    if kind == "invalid_json":
        return json.dumps(sale)[: rng.randrange(3, 20)]
    if kind == "missing_products":
        return json.dumps({"Id": sale["Id"]})
    if kind == "products_not_list":
        joined = ",".join(sale["products"])
        return json.dumps({"Id": sale["Id"], "products": rng.choice((joined, {joined: 1}))})
    if rng.random() < 0.3:
        return json.dumps({"Id": None, "products": sale["products"]})
    return json.dumps({"products": sale["products"]})


def _sales_day(rng: random.Random, catalog: Catalog, per_day: int) -> tuple[list[str], Counter]:
    good = [json.dumps(_sale(rng, catalog)) for _ in range(per_day)]
    counts = Counter({kind: rng.randint(1, 2) for kind in SALES_BAD_KINDS})
    extras = [
        (per_day, _break_sale(kind, rng, _sale(rng, catalog)))
        for kind in SALES_BAD_KINDS
        for _ in range(counts[kind])
    ]
    return _interleave(rng, good, extras), counts


def _generate_sales(out_dir, dates, per_day, seed, catalog) -> dict:
    report = _Report()
    for day in dates:
        lines, bad = _sales_day(_rng(seed, "sales", day.isoformat()), catalog, per_day)
        relpath = f"sales/{day.isoformat()}.json"
        _write(out_dir, relpath, _lines_text(lines))
        report.add(relpath, len(lines), bad)
    return report.as_dict()


# --------------------------------------------------------------------------- retail

COLOURS = ("WHITE", "RED", "PINK", "BLUE", "GREEN", "IVORY", "CREAM", "BLACK", "VINTAGE")
MOTIFS = ("HANGING HEART", "REGENCY", "PAISLEY", "SPACEBOY", "DOLLY GIRL", "RETROSPOT", "ROSE")
NOUNS = (
    "T-LIGHT HOLDER",
    "LUNCH BOX",
    "TEACUP AND SAUCER",
    "JUMBO BAG",
    "CAKE CASES",
    "PHOTO FRAME",
    "HOT WATER BOTTLE",
    "NAPKINS",
    "DOORMAT",
    "CUSHION COVER",
    "ALARM CLOCK",
    "NOTEBOOK",
)
RETAIL_COUNTRIES = (
    ("United Kingdom", 880),
    ("Germany", 30),
    ("France", 30),
    ("EIRE", 20),
    ("Spain", 10),
    ("Netherlands", 10),
    ("Belgium", 8),
    ("Switzerland", 6),
    ("Portugal", 4),
    ("Australia", 2),
)
RETAIL_QUANTITIES = ((1, 10), (2, 8), (3, 5), (4, 6), (6, 12), (8, 4), (12, 14), (24, 6), (48, 2))
COMMA_ITEM = ("23084", "SET OF 3 CAKE TINS, PANTRY DESIGN", "4.95")
QUOTE_ITEM = ("21175", 'GIN + TONIC DIET METAL SIGN "CHEERS"', "2.55")
POUND_ITEM = ("gift_0001_10", "Dotcomgiftshop Gift Voucher £10.00", "8.51")
ADJUSTMENT = ("B", "Adjust bad debt", "-11062.06")
SERVICE_ITEMS = (
    ("POST", "POSTAGE", "18.0"),
    ("M", "Manual", "0.85"),
    ("DOT", "DOTCOM POSTAGE", "11.3"),
)


@dataclass
class _Shop:
    """The state of the retail generator: stock, customers and the next invoice number."""

    rng: random.Random
    stock: tuple[tuple[str, str, str], ...]  # (StockCode, Description, UnitPrice)
    customers: tuple[tuple[str, str], ...]  # (CustomerID, Country)
    next_no: int = 536365

    def number(self, prefix: str = "") -> str:
        self.next_no += 1
        return f"{prefix}{self.next_no - 1}"


def _stock_item(rng: random.Random, code: int) -> tuple[str, str, str]:
    suffix = rng.choice(("", "", "", "A", "B", "C"))
    words = f"{rng.choice(COLOURS)} {rng.choice(MOTIFS)} {rng.choice(NOUNS)}"
    if rng.random() < 0.15:
        words += " "  # trailing spaces are a real quirk of the data set
    price = rng.choice((0.42, 0.85, 1.25, 1.65, 2.1, 2.55, 2.95, 3.75, 4.95, 7.95, 12.75))
    return f"{code}{suffix}", words, str(price)


def make_shop(seed: int) -> _Shop:
    """Stock codes, customers (`17850.0`-style ids, a fixed country) of a seed."""
    rng = _rng(seed, "retail")
    stock = tuple(_stock_item(rng, code) for code in sorted(rng.sample(range(20000, 90000), 250)))
    numbers = sorted(rng.sample(range(12346, 18288), 400))
    customers = tuple((f"{n}.0", _pick(rng, RETAIL_COUNTRIES)) for n in numbers)
    return _Shop(rng, stock + SERVICE_ITEMS, customers)


def _row(number: str, item, quantity: int, customer: tuple[str, str]) -> list[str]:
    code, description, price = item
    return [number, code, description, str(quantity), "", price, *customer]


def _buyer(shop: _Shop) -> tuple[str, str]:
    """A registered customer, or ~20% of the time none (empty CustomerID)."""
    if shop.rng.random() < 0.2:
        return "", _pick(shop.rng, RETAIL_COUNTRIES)
    return shop.rng.choice(shop.customers)


def _invoice(shop: _Shop, room: int) -> list[list[str]]:
    """An invoice of 1..8 items (at most `room`)."""
    number, customer = shop.number(), _buyer(shop)
    items = shop.rng.sample(shop.stock, min(shop.rng.randint(1, 8), room))
    return [_row(number, item, _pick(shop.rng, RETAIL_QUANTITIES), customer) for item in items]


def _cancellation(shop: _Shop, invoice: list[list[str]], room: int) -> list[list[str]]:
    """A `C` invoice taking back some items of `invoice` (negative quantities)."""
    number = shop.number("C")
    rows = shop.rng.sample(invoice, min(shop.rng.randint(1, len(invoice)), room))
    return [[number, *row[1:3], f"-{row[3]}", *row[4:]] for row in rows]


def _special_invoices(shop: _Shop) -> list[list[list[str]]]:
    """The first day's oddities: comma, quote, £, an exact duplicate, `C` and `A`."""
    customer = shop.customers[0]
    number = shop.number()
    first = [_row(number, COMMA_ITEM, 12, customer), _row(number, QUOTE_ITEM, 6, customer)]
    first.append(list(first[0]))
    cancel = [[shop.number("C"), *first[1][1:3], "-6", *first[1][4:]]]
    voucher = [_row(shop.number(), POUND_ITEM, 1, ("", "United Kingdom"))]
    adjust = [_row(shop.number("A"), ADJUSTMENT, 1, ("", "United Kingdom"))]
    return [first, cancel, voucher, adjust]


def _retail_invoices(shop: _Shop, per_day: int, first_day: bool) -> list[list[list[str]]]:
    """A day's invoices, exactly `per_day` rows in all (a few `C` ones among them)."""
    invoices = _special_invoices(shop) if first_day else []
    rows = sum(len(invoice) for invoice in invoices)
    while rows < per_day:
        invoice = _invoice(shop, per_day - rows)
        invoices.append(invoice)
        rows += len(invoice)
        if rows < per_day and shop.rng.random() < 0.04:
            invoices.append(_cancellation(shop, invoice, per_day - rows))
            rows += len(invoices[-1])
    return invoices


def _date_invoices(shop: _Shop, invoices, day: dt.date) -> list[list[str]]:
    """Give each invoice a time of `day` (in invoice order) and flatten to rows."""
    minutes = sorted(shop.rng.randrange(8 * 60, 20 * 60) for _ in invoices)
    rows = []
    for invoice, minute in zip(invoices, minutes, strict=True):
        stamp = dt.datetime.combine(day, dt.time(minute // 60, minute % 60))
        for row in invoice:
            rows.append([*row[:4], stamp.strftime("%Y-%m-%d %H:%M:%S"), *row[5:]])
    return rows


def _break_retail(kind: str, rng: random.Random, row: list[str], day: dt.date) -> list[str]:
    """A copy of `row` with one defect of `kind`."""
    bad = list(row)
    if kind == "bad_quantity":
        bad[3] = rng.choice(("abc", "two", "1.5"))
    elif kind == "bad_date":
        bad[4] = rng.choice((f"{day:%d.%m.%Y} 08:26", "yesterday", f"{day.isoformat()} 25:61:00"))
    else:
        bad[0] = ""
    return bad


def _retail_bad_rows(rng, rows, day) -> tuple[list[list[str]], Counter]:
    """`rows` with 1-2 bad rows of each kind, each right after the row it copies."""
    counts = Counter({kind: rng.randint(1, 2) for kind in RETAIL_BAD_KINDS})
    after: dict[int, list[list[str]]] = {}
    for kind in RETAIL_BAD_KINDS:
        for _ in range(counts[kind]):
            index = rng.randrange(len(rows))
            after.setdefault(index, []).append(_break_retail(kind, rng, rows[index], day))
    merged = []
    for index, row in enumerate(rows):
        merged += [row, *after.get(index, [])]
    return merged, counts


def _generate_retail(out_dir, dates, per_day, seed) -> dict:
    shop, report = make_shop(seed), _Report()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RETAIL_HEADER)
    lines, bad = 0, Counter()
    for day in dates:
        invoices = _retail_invoices(shop, per_day, day == dates[0])
        rows, counts = _retail_bad_rows(shop.rng, _date_invoices(shop, invoices, day), day)
        writer.writerows(rows)
        lines, bad = lines + len(rows), bad + counts
    _write(out_dir, RETAIL_FILE, buffer.getvalue())
    report.add(RETAIL_FILE, lines, bad)
    return report.as_dict()


# --------------------------------------------------------------------------- exchange rates


def _business_days(first: dt.date, last: dt.date) -> list[dt.date]:
    days = (first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    return [day for day in days if day.weekday() < 5]


def _ecb_number(value: float) -> str:
    """Five significant digits, trailing zeros dropped, as the ECB writes them."""
    decimals = max(0, 4 - math.floor(math.log10(value)))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _rate_series(rng: random.Random, days: int) -> dict[str, list[str]]:
    """Per currency, its rates from the oldest day on (a small random daily drift)."""
    series = {}
    for currency, start, volatility in RATE_COLUMNS:
        if start is None:
            series[currency] = ["N/A"] * days
            continue
        value, values = start, []
        for _ in range(days):
            values.append(_ecb_number(value))
            value *= math.exp(rng.gauss(0, volatility))
        series[currency] = values
    return series


def _generate_rates(out_dir, dates, seed) -> dict:
    days = _business_days(dates[0] - dt.timedelta(days=RATE_LEAD_DAYS), dates[-1])
    series = _rate_series(_rng(seed, "exchange_rates"), len(days))
    currencies = [currency for currency, _, _ in RATE_COLUMNS]
    lines = ["Date," + "".join(f"{currency}," for currency in currencies)]
    for index in reversed(range(len(days))):
        values = "".join(f"{series[currency][index]}," for currency in currencies)
        lines.append(f"{days[index].isoformat()},{values}")
    _write(out_dir, RATES_FILE, _lines_text(lines))
    report = _Report()
    report.add(RATES_FILE, len(days), Counter())
    return report.as_dict()


# --------------------------------------------------------------------------- entry point


def day_range(days: int, end_date: dt.date) -> list[dt.date]:
    """The generated days D1..Dn, oldest first, ending at `end_date`."""
    return [end_date - dt.timedelta(days=days - 1 - n) for n in range(days)]


def generate(
    out_dir: pathlib.Path, *, days: int, per_day: int, seed: int, end_date: dt.date
) -> dict:
    """Write demo files for every source under `out_dir/<source>/` and summarize them.

    Returns `{source: {"files": [paths relative to out_dir], "lines": n, "bad_lines":
    {kind: count}}}` where `lines` counts every data line or row written (good, bad and
    corrections; not CSV headers). Existing files with the same names are overwritten.
    """
    if days < 1:
        raise ValueError("days must be 1 or more")
    if not MIN_PER_DAY <= per_day <= MAX_PER_DAY:
        raise ValueError(f"per_day must be between {MIN_PER_DAY} and {MAX_PER_DAY}")
    out_dir = pathlib.Path(out_dir)
    dates = day_range(days, end_date)
    catalog = make_catalog(seed)
    return {
        "transactions": _generate_transactions(out_dir, dates, per_day, seed, catalog),
        "sales": _generate_sales(out_dir, dates, per_day, seed, catalog),
        "retail": _generate_retail(out_dir, dates, per_day, seed),
        "exchange_rates": _generate_rates(out_dir, dates, seed),
    }
