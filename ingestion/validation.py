"""Validation of records against DATA.md, shared by the Spark jobs and the Kafka consumer.

Each validator takes the raw text of one record and returns `(row, None)` for a
good record (a dict of typed column values) or `(None, reason)`; a reason is
`"<code>: <sentence>"` with a stable code, so rejects can be counted by kind.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import orjson

from ingestion.rates import RateTable

STATUSES = ("completed", "pending", "failed", "refunded", "cancelled")
CENT = Decimal("0.01")
ISO_COUNTRIES = frozenset(
    [
        "AD",
        "AE",
        "AF",
        "AG",
        "AI",
        "AL",
        "AM",
        "AO",
        "AQ",
        "AR",
        "AS",
        "AT",
        "AU",
        "AW",
        "AX",
        "AZ",
        "BA",
        "BB",
        "BD",
        "BE",
        "BF",
        "BG",
        "BH",
        "BI",
        "BJ",
        "BL",
        "BM",
        "BN",
        "BO",
        "BQ",
        "BR",
        "BS",
        "BT",
        "BV",
        "BW",
        "BY",
        "BZ",
        "CA",
        "CC",
        "CD",
        "CF",
        "CG",
        "CH",
        "CI",
        "CK",
        "CL",
        "CM",
        "CN",
        "CO",
        "CR",
        "CU",
        "CV",
        "CW",
        "CX",
        "CY",
        "CZ",
        "DE",
        "DJ",
        "DK",
        "DM",
        "DO",
        "DZ",
        "EC",
        "EE",
        "EG",
        "EH",
        "ER",
        "ES",
        "ET",
        "FI",
        "FJ",
        "FK",
        "FM",
        "FO",
        "FR",
        "GA",
        "GB",
        "GD",
        "GE",
        "GF",
        "GG",
        "GH",
        "GI",
        "GL",
        "GM",
        "GN",
        "GP",
        "GQ",
        "GR",
        "GS",
        "GT",
        "GU",
        "GW",
        "GY",
        "HK",
        "HM",
        "HN",
        "HR",
        "HT",
        "HU",
        "ID",
        "IE",
        "IL",
        "IM",
        "IN",
        "IO",
        "IQ",
        "IR",
        "IS",
        "IT",
        "JE",
        "JM",
        "JO",
        "JP",
        "KE",
        "KG",
        "KH",
        "KI",
        "KM",
        "KN",
        "KP",
        "KR",
        "KW",
        "KY",
        "KZ",
        "LA",
        "LB",
        "LC",
        "LI",
        "LK",
        "LR",
        "LS",
        "LT",
        "LU",
        "LV",
        "LY",
        "MA",
        "MC",
        "MD",
        "ME",
        "MF",
        "MG",
        "MH",
        "MK",
        "ML",
        "MM",
        "MN",
        "MO",
        "MP",
        "MQ",
        "MR",
        "MS",
        "MT",
        "MU",
        "MV",
        "MW",
        "MX",
        "MY",
        "MZ",
        "NA",
        "NC",
        "NE",
        "NF",
        "NG",
        "NI",
        "NL",
        "NO",
        "NP",
        "NR",
        "NU",
        "NZ",
        "OM",
        "PA",
        "PE",
        "PF",
        "PG",
        "PH",
        "PK",
        "PL",
        "PM",
        "PN",
        "PR",
        "PS",
        "PT",
        "PW",
        "PY",
        "QA",
        "RE",
        "RO",
        "RS",
        "RU",
        "RW",
        "SA",
        "SB",
        "SC",
        "SD",
        "SE",
        "SG",
        "SH",
        "SI",
        "SJ",
        "SK",
        "SL",
        "SM",
        "SN",
        "SO",
        "SR",
        "SS",
        "ST",
        "SV",
        "SX",
        "SY",
        "SZ",
        "TC",
        "TD",
        "TF",
        "TG",
        "TH",
        "TJ",
        "TK",
        "TL",
        "TM",
        "TN",
        "TO",
        "TR",
        "TT",
        "TV",
        "TW",
        "TZ",
        "UA",
        "UG",
        "UM",
        "US",
        "UY",
        "UZ",
        "VA",
        "VC",
        "VE",
        "VG",
        "VI",
        "VN",
        "VU",
        "WF",
        "WS",
        "YE",
        "YT",
        "ZA",
        "ZM",
        "ZW",
    ]
)
CURRENCY = re.compile(r"^[A-Z]{3}$")
TEXT_LIMITS = {
    "transaction_id": 64,
    "user_id": 64,
    "product_id": 64,
    "transaction_type": 32,
    "payment_method": 32,
    "product_category": 64,
}


class Rejected(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.reason = f"{code}: {message}"


def _text(obj: dict, name: str, required: bool = True) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        if required:
            raise Rejected("missing_field", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise Rejected("bad_type", f"{name} must be a string, got {value!r}")
    if len(value) > TEXT_LIMITS.get(name, 256):
        raise Rejected("bad_type", f"{name} is longer than {TEXT_LIMITS.get(name, 256)} characters")
    return value


def _timestamp(obj: dict) -> dt.datetime:
    value = _text(obj, "timestamp")
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None:
        raise Rejected(
            "bad_timestamp", f"timestamp must be ISO 8601 with a time zone, got {value!r}"
        )
    return stamp.astimezone(dt.UTC)


def _quantity(obj: dict) -> int:
    value = obj.get("quantity")
    if value is None:
        raise Rejected("missing_field", "quantity is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected("bad_type", f"quantity must be an integer, got {value!r}")
    if value < 1:
        raise Rejected("bad_quantity", f"quantity must be 1 or more, got {value}")
    return value


def _amount(obj: dict) -> Decimal:
    value = obj.get("amount")
    if value is None:
        raise Rejected("missing_field", "amount is required")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Rejected("bad_type", f"amount must be a decimal number, got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise Rejected("bad_type", f"amount must be a decimal number, got {value!r}") from None
    if not amount.is_finite() or amount >= Decimal("1e13"):
        raise Rejected("bad_type", f"amount is out of range: {value!r}")
    if amount < 0:
        raise Rejected("negative_amount", f"amount must be 0 or more, got {value}")
    return amount.quantize(CENT, ROUND_HALF_UP)


def _rating(obj: dict) -> int | None:
    value = obj.get("customer_rating")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise Rejected(
            "bad_rating", f"customer_rating must be an integer 1..5 or null, got {value!r}"
        )
    return value


def _choice(obj: dict, name: str, allowed, code: str, what: str) -> str:
    value = _text(obj, name)
    if value not in allowed:
        raise Rejected(code, f"{name} must be {what}, got {value!r}")
    return value


def parse_object(raw: str | bytes) -> dict:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected("invalid_json", f"not a JSON object ({exc})") from None
    if not isinstance(obj, dict):
        raise Rejected("invalid_json", "not a JSON object")
    return obj


def transaction_row(obj: dict, rates: RateTable) -> dict:
    """The typed row of one transaction object, or Rejected with the reason."""
    row = {
        "transaction_id": _text(obj, "transaction_id"),
        "user_id": _text(obj, "user_id"),
        "timestamp": _timestamp(obj),
        "transaction_type": _text(obj, "transaction_type"),
        "payment_method": _text(obj, "payment_method"),
        "country": _choice(
            obj, "country", ISO_COUNTRIES, "bad_country", "an ISO 3166 alpha-2 code"
        ),
        "product_id": _text(obj, "product_id"),
        "product_category": _text(obj, "product_category", required=False),
        "quantity": _quantity(obj),
        "amount": _amount(obj),
        "currency": obj.get("currency") or "EUR",
        "status": _choice(obj, "status", STATUSES, "bad_status", "one of " + ", ".join(STATUSES)),
        "customer_rating": _rating(obj),
    }
    currency = row["currency"]
    if not isinstance(currency, str) or not CURRENCY.match(currency):
        raise Rejected("bad_currency", f"currency must be an ISO 4217 code, got {currency!r}")
    day = row["timestamp"].date()
    rate = rates.rate(currency, day)
    if rate is None:
        raise Rejected("unknown_currency", f"no ECB rate for {currency} on or before {day}")
    row["amount_eur"] = (row["amount"] / rate).quantize(CENT, ROUND_HALF_UP)
    return row


def validate_transaction(raw: str | bytes, rates: RateTable) -> tuple[dict | None, str | None]:
    """(row, None) for a good transaction line or message, else (None, reason)."""
    try:
        return transaction_row(parse_object(raw), rates), None
    except Rejected as rejected:
        return None, rejected.reason


def validate_sale(raw: str | bytes) -> tuple[dict | None, str | None]:
    """A daily sales line: `{"Id": <customer id>, "products": [<product id>, ...]}`."""
    try:
        obj = parse_object(raw)
        customer = obj.get("Id")
        if customer is None or customer == "":
            raise Rejected("missing_id", "Id (the customer id) is required")
        if isinstance(customer, bool) or not isinstance(customer, (str, int)):
            raise Rejected("bad_type", f"Id must be a string or an integer, got {customer!r}")
        products = obj.get("products")
        if products is None:
            raise Rejected("missing_products", "products is required")
        if not isinstance(products, list) or not all(
            isinstance(p, (str, int)) and not isinstance(p, bool) for p in products
        ):
            raise Rejected("products_not_list", f"products must be a list of ids, got {products!r}")
        return {"customer_id": str(customer), "products": [str(p) for p in products]}, None
    except Rejected as rejected:
        return None, rejected.reason
