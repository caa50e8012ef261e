"""The demo-data generator: deterministic, every source present, bad lines as announced.

Plain functions, no database: the files are checked against DATA.md with small
independent readers written here, and against the ingestion's own line parsers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import Counter
from decimal import Decimal

import pytest

from ingestion import sample_data
from ingestion.sample_data import generate

END = dt.date(2024, 3, 10)  # a Sunday: weekend transactions need Friday's rate
DAYS = 4
PER_DAY = 40
SEED = 7
DATES = [END - dt.timedelta(days=n) for n in reversed(range(DAYS))]
TX_FIELDS = {
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
}
TX_REQUIRED = TX_FIELDS - {"product_category", "currency", "customer_rating"}
TX_STRINGS = ("transaction_id", "user_id", "transaction_type", "payment_method", "product_id")
STATUSES = {"completed", "pending", "failed", "refunded", "cancelled"}
AMOUNT = re.compile(r'"amount": (\d+\.\d\d)[,}]')
RETAIL_DATE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:00$")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("landing")
    summary = generate(out, days=DAYS, per_day=PER_DAY, seed=SEED, end_date=END)
    return out, summary


def read_lines(path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def all_files(root) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------- readers


def read_rates(path) -> dict[str, list[tuple[dt.date, Decimal]]]:
    """The ECB wide file: {currency: [(date, rate), ...]} (no N/A entries)."""
    lines = read_lines(path)
    header = lines[0].split(",")
    assert header[0] == "Date" and header[-1] == ""
    rates: dict[str, list[tuple[dt.date, Decimal]]] = {c: [] for c in header[1:-1]}
    for line in lines[1:]:
        fields = line.split(",")
        assert len(fields) == len(header) and fields[-1] == ""
        day = dt.date.fromisoformat(fields[0])
        for currency, value in zip(header[1:-1], fields[1:-1], strict=True):
            if value != "N/A":
                rates[currency].append((day, Decimal(value)))
    return rates


def has_rate(rates, currency: str, day: dt.date) -> bool:
    return currency == "EUR" or any(d <= day for d, _ in rates.get(currency, []))


def transaction_problem(line: str, rates) -> str | None:
    """The DATA.md rejection kind of a transaction line (duplicates aside), or None."""
    try:
        obj = json.loads(line)
    except ValueError:
        return "invalid_json"
    if not isinstance(obj, dict):
        return "invalid_json"
    if any(obj.get(name) in (None, "") for name in TX_REQUIRED):
        return "missing_field"
    if not all(isinstance(obj[name], str) for name in TX_STRINGS):
        return "bad_type"
    quantity, amount, rating = obj["quantity"], obj["amount"], obj.get("customer_rating")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        return "bad_type"
    if quantity < 1:
        return "bad_quantity"
    if amount < 0:
        return "negative_amount"
    if obj["status"] not in STATUSES:
        return "bad_status"
    if not re.fullmatch(r"[A-Z]{2}", obj["country"]) or obj["country"] == "UK":
        return "bad_country"
    try:
        stamp = dt.datetime.fromisoformat(obj["timestamp"])
    except ValueError:
        return "bad_timestamp"
    if stamp.tzinfo is None:
        return "bad_timestamp"
    if not has_rate(rates, obj.get("currency") or "EUR", stamp.astimezone(dt.UTC).date()):
        return "unknown_currency"
    if rating is not None and (isinstance(rating, bool) or rating not in range(1, 6)):
        return "bad_rating"
    return None


def classify_transactions(lines: list[str], rates) -> tuple[list[dict], Counter]:
    """The records that would be loaded (last of each id wins) and the rejects by kind."""
    bad, valid = Counter(), []
    for line in lines:
        kind = transaction_problem(line, rates)
        if kind:
            bad[kind] += 1
        else:
            valid.append(json.loads(line))
    last = {record["transaction_id"]: record for record in valid}
    bad["duplicate_id"] += len(valid) - len(last)
    return list(last.values()), bad


def sale_problem(line: str) -> str | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return "invalid_json"
    if not isinstance(obj, dict):
        return "invalid_json"
    if obj.get("Id") in (None, ""):
        return "missing_id"
    if "products" not in obj or obj["products"] is None:
        return "missing_products"
    if not isinstance(obj["products"], list):
        return "products_not_list"
    return None


def retail_problem(row: list[str]) -> str | None:
    assert len(row) == 8
    if not row[0]:
        return "missing_invoice_no"
    try:
        int(row[3])
    except ValueError:
        return "bad_quantity"
    try:
        dt.datetime.strptime(row[4], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "bad_date"
    assert RETAIL_DATE.match(row[4])
    Decimal(row[5])
    assert row[6] == "" or re.fullmatch(r"\d{5}\.0", row[6])
    return None


def read_retail(path) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert tuple(rows[0]) == sample_data.RETAIL_HEADER
    return rows[1:]


# --------------------------------------------------------------------------- determinism


def test_same_arguments_give_byte_identical_files(tmp_path):
    first = generate(tmp_path / "a", days=3, per_day=25, seed=3, end_date=END)
    second = generate(tmp_path / "b", days=3, per_day=25, seed=3, end_date=END)
    assert first == second
    assert all_files(tmp_path / "a") == all_files(tmp_path / "b")


def test_another_seed_gives_other_data(tmp_path):
    generate(tmp_path / "a", days=2, per_day=25, seed=3, end_date=END)
    generate(tmp_path / "b", days=2, per_day=25, seed=4, end_date=END)
    a, b = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[name] != b[name] for name in a)


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path, days=0, per_day=25, seed=1, end_date=END)
    with pytest.raises(ValueError):
        generate(tmp_path, days=1, per_day=sample_data.MIN_PER_DAY - 1, seed=1, end_date=END)


# --------------------------------------------------------------------------- layout


def test_every_source_and_file_is_there(generated):
    out, summary = generated
    days = [d.isoformat() for d in DATES]
    expected = {
        "transactions": [f"transactions/{d}.jsonl" for d in days],
        "sales": [f"sales/{d}.json" for d in days],
        "retail": ["retail/retail_sample.csv"],
        "exchange_rates": ["exchange_rates/eurofxref-hist.csv"],
    }
    assert {s: r["files"] for s, r in summary.items()} == expected
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted(f for files in expected.values() for f in files)
    for source, report in summary.items():
        assert set(report["bad_lines"]) == set(sample_data.BAD_KINDS[source])


# --------------------------------------------------------------------------- transactions


def test_transactions_parse_except_the_planted_bad_lines(generated):
    out, summary = generated
    rates = read_rates(out / "exchange_rates/eurofxref-hist.csv")
    total_bad, total_lines = Counter(), 0
    for day in DATES:
        lines = read_lines(out / f"transactions/{day}.jsonl")
        loaded, bad = classify_transactions(lines, rates)
        total_bad += bad
        total_lines += len(lines)
        assert all(1 <= bad[kind] <= 2 for kind in sample_data.TRANSACTION_BAD_KINDS)
        own = [r for r in loaded if r["transaction_id"].startswith(f"TX-{day:%Y%m%d}-")]
        assert len(own) == PER_DAY
        assert len(loaded) == PER_DAY + (sample_data.CORRECTIONS if day == END else 0)
    assert summary["transactions"]["lines"] == total_lines
    assert summary["transactions"]["bad_lines"] == dict(total_bad)


def test_good_transactions_follow_data_md(generated):
    out, _ = generated
    rates = read_rates(out / "exchange_rates/eurofxref-hist.csv")
    seen_ids = set()
    for day in DATES:
        lines = read_lines(out / f"transactions/{day}.jsonl")
        for line in lines:
            if transaction_problem(line, rates):
                continue
            record = json.loads(line)
            assert set(record) <= TX_FIELDS and set(record) >= TX_REQUIRED
            assert re.fullmatch(r"TX-\d{8}-\d{6}", record["transaction_id"])
            assert re.fullmatch(r"U\d{5}", record["user_id"])
            assert re.fullmatch(r"P\d{4}", record["product_id"])
            assert AMOUNT.search(line), line
            assert record["timestamp"].endswith("Z")
            assert record.get("product_category") in {*sample_data.CATEGORIES, None}
            if record["transaction_id"].startswith(f"TX-{day:%Y%m%d}-"):
                assert record["timestamp"][:10] == day.isoformat()
                seen_ids.add(record["transaction_id"])
    assert len(seen_ids) == PER_DAY * DAYS


def test_weekend_transactions_rely_on_an_earlier_rate(generated):
    out, _ = generated
    rates = read_rates(out / "exchange_rates/eurofxref-hist.csv")
    rate_days = {d for d, _ in rates["USD"]}
    assert END not in rate_days and END.weekday() == 6
    assert all(d.weekday() < 5 for d in rate_days)
    assert min(rate_days) <= DATES[0] - dt.timedelta(days=8)


def test_last_day_corrects_earlier_transactions(generated):
    out, _ = generated
    rates = read_rates(out / "exchange_rates/eurofxref-hist.csv")
    earlier = {}
    for day in DATES[:-1]:
        loaded, _ = classify_transactions(read_lines(out / f"transactions/{day}.jsonl"), rates)
        earlier.update((record["transaction_id"], record) for record in loaded)
    last, _ = classify_transactions(read_lines(out / f"transactions/{END}.jsonl"), rates)
    prefix = f"TX-{END:%Y%m%d}-"
    corrections = [r for r in last if not r["transaction_id"].startswith(prefix)]
    assert len(corrections) == sample_data.CORRECTIONS
    for record in corrections:
        old = earlier[record["transaction_id"]]
        assert record["amount"] != old["amount"]
        assert {**record, "amount": old["amount"]} == old


def test_duplicates_keep_the_last_line_valid(generated):
    out, _ = generated
    rates = read_rates(out / "exchange_rates/eurofxref-hist.csv")
    lines = read_lines(out / f"transactions/{DATES[0]}.jsonl")
    valid = [json.loads(line) for line in lines if not transaction_problem(line, rates)]
    ids = Counter(record["transaction_id"] for record in valid)
    repeated = [tx_id for tx_id, n in ids.items() if n > 1]
    assert repeated
    for tx_id in repeated:
        versions = [r for r in valid if r["transaction_id"] == tx_id]
        assert versions[0] != versions[-1]


# --------------------------------------------------------------------------- sales


def test_sales_parse_except_the_planted_bad_lines(generated):
    out, summary = generated
    total_bad, total_lines = Counter(), 0
    for day in DATES:
        lines = read_lines(out / f"sales/{day}.json")
        kinds = [sale_problem(line) for line in lines]
        good = [json.loads(line) for line, kind in zip(lines, kinds, strict=True) if not kind]
        assert len(good) == PER_DAY
        assert {type(sale["Id"]) for sale in good} == {int, str}
        for sale in good:
            assert 1 <= len(sale["products"]) <= 6
            assert all(re.fullmatch(r"P\d{4}", p) for p in sale["products"])
        total_bad += Counter(kind for kind in kinds if kind)
        total_lines += len(lines)
    assert summary["sales"]["lines"] == total_lines
    assert summary["sales"]["bad_lines"] == dict(total_bad)


def test_some_sales_list_a_product_twice(generated):
    out, _ = generated
    lines = [line for day in DATES for line in read_lines(out / f"sales/{day}.json")]
    good = [json.loads(line) for line in lines if not sale_problem(line)]
    assert any(len(set(s["products"])) < len(s["products"]) for s in good)


# --------------------------------------------------------------------------- retail


def test_retail_parses_except_the_planted_bad_rows(generated):
    out, summary = generated
    rows = read_retail(out / "retail/retail_sample.csv")
    kinds = [retail_problem(row) for row in rows]
    good = [row for row, kind in zip(rows, kinds, strict=True) if not kind]
    assert summary["retail"]["lines"] == len(rows)
    assert summary["retail"]["bad_lines"] == dict(Counter(kind for kind in kinds if kind))
    per_day = Counter(row[4][:10] for row in good)
    assert per_day == {day.isoformat(): PER_DAY for day in DATES}


def test_retail_has_the_quirks_of_the_real_data(generated):
    out, _ = generated
    text = (out / "retail/retail_sample.csv").read_text(encoding="utf-8")
    rows = [row for row in read_retail(out / "retail/retail_sample.csv") if not retail_problem(row)]
    cancelled = [row for row in rows if row[0].startswith("C")]
    assert cancelled and all(int(row[3]) < 0 for row in cancelled)
    assert any(row[0].startswith("A") and Decimal(row[5]) < 0 for row in rows)
    assert any(row[6] == "" for row in rows)
    assert any(row[6] for row in rows)
    assert any("," in row[2] for row in rows)
    assert any('"' in row[2] for row in rows) and '""' in text
    assert "£" in text
    assert len(rows) > len({tuple(row) for row in rows})
    invoices = Counter(row[0] for row in rows)
    assert max(invoices.values()) <= 8 + 1  # one invoice carries the exact duplicate


# --------------------------------------------------------------------------- exchange rates


def test_exchange_rates_follow_the_ecb_wide_format(generated):
    out, summary = generated
    lines = read_lines(out / "exchange_rates/eurofxref-hist.csv")
    assert all(line.endswith(",") for line in lines)
    days = [dt.date.fromisoformat(line.split(",", 1)[0]) for line in lines[1:]]
    assert days == sorted(days, reverse=True)
    first = DATES[0] - dt.timedelta(days=sample_data.RATE_LEAD_DAYS)
    span = [first + dt.timedelta(days=n) for n in range((END - first).days + 1)]
    assert days == [d for d in reversed(span) if d.weekday() < 5]
    assert summary["exchange_rates"] == {
        "files": ["exchange_rates/eurofxref-hist.csv"],
        "lines": len(days),
        "bad_lines": {},
    }
    rates = read_rates(out / "exchange_rates/eurofxref-hist.csv")
    for currency in ("USD", "GBP", "CHF", "JPY", "SEK", "PLN"):
        assert len(rates[currency]) == len(days)
        assert all(rate > 0 for _, rate in rates[currency])
    assert [c for c, values in rates.items() if not values]  # one column is always N/A


def test_transactions_use_the_rated_currencies(generated):
    out, _ = generated
    rates = read_rates(out / "exchange_rates/eurofxref-hist.csv")
    currencies = Counter()
    for day in DATES:
        for line in read_lines(out / f"transactions/{day}.jsonl"):
            if not transaction_problem(line, rates):
                currencies[json.loads(line).get("currency", "EUR")] += 1
    assert currencies.most_common(1)[0][0] == "EUR"
    assert set(currencies) - {"EUR"} <= {"USD", "GBP", "CHF", "JPY", "SEK", "PLN"}


# --------------------------------------------------------------------------- the pipeline


def test_the_ingestion_parsers_reject_exactly_the_planted_lines(generated):
    """Cross-check with the real line parsers of `ingestion.sources`."""
    sources = pytest.importorskip("ingestion.sources")
    from ingestion.rates import RateTable

    out, summary = generated
    rates_lines = read_lines(out / "exchange_rates/eurofxref-hist.csv")
    header = next(csv.reader([rates_lines[0]]))
    table: dict[str, list[tuple[str, str]]] = {}
    for line in rates_lines[1:]:
        for row in sources.parse_exchange_rates(line, sources.Context(header=header)):
            table.setdefault(row["currency"], []).append(
                (row["date"].isoformat(), str(row["rate"]))
            )
    context = sources.Context(rates=RateTable(table))

    def rejects(parse, lines, ctx) -> Counter:
        codes = Counter()
        for line in lines:
            try:
                parse(line, ctx)
            except sources.Rejected as rejected:
                codes[rejected.reason.split(":", 1)[0]] += 1
        return codes

    tx = Counter()
    for day in DATES:
        tx += rejects(
            sources.parse_transaction, read_lines(out / f"transactions/{day}.jsonl"), context
        )
    expected_tx = dict(summary["transactions"]["bad_lines"])
    expected_tx.pop("duplicate_id")  # the merge drops those, not the line parser
    assert dict(tx) == expected_tx

    sales = Counter()
    for day in DATES:
        ctx = sources.Context(file_date=day)
        sales += rejects(sources.parse_sale, read_lines(out / f"sales/{day}.json"), ctx)
    assert dict(sales) == summary["sales"]["bad_lines"]

    retail_lines = read_lines(out / "retail/retail_sample.csv")[1:]
    retail = rejects(sources.parse_retail, retail_lines, sources.Context())
    assert dict(retail) == summary["retail"]["bad_lines"]
