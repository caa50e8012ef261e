"""Bodies of the retail API: strict input serializers, and the output shapes (with links)."""

from __future__ import annotations

from decimal import Decimal

from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from datalake.api.strict import StrictSerializer

KEY_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
KEY_HELP = "1 to 32 letters, digits, `-` or `_`."
CENT, MILLI = Decimal("0.01"), Decimal("0.001")


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 timestamp that says its time zone (API.md); a naive one or a date
    alone is refused rather than guessed."""

    default_error_messages = {
        "naive": "Give a timestamp with its time zone, e.g. 2011-12-09T12:50:00Z.",
    }

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        return super().to_internal_value(value)


def price_text(value: Decimal) -> str:
    """2 decimal places, or 3 when the price has a third (the data set has 0.001)."""
    cents = value.quantize(CENT)
    return str(cents if cents == value else value.quantize(MILLI))


class PriceField(serializers.DecimalField):
    """A unit price as `price_text` writes it."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=14, decimal_places=3, **kwargs)

    def to_representation(self, value):
        return price_text(Decimal(value))


# -- input ----------------------------------------------------------------------------


class CustomerCreateSerializer(StrictSerializer):
    customer_id = serializers.RegexField(
        KEY_PATTERN, help_text=f"The new customer's id: {KEY_HELP}"
    )
    country = serializers.CharField(max_length=64, help_text="e.g. `United Kingdom`.")


class InvoiceCreateSerializer(StrictSerializer):
    invoice_no = serializers.RegexField(
        KEY_PATTERN,
        help_text=f"The new invoice's number: {KEY_HELP} Not starting with `C` (cancellations "
        "come with the retail files).",
    )
    invoice_date = AwareDateTimeField(help_text="ISO 8601 timestamp with a time zone.")

    def validate_invoice_no(self, value: str) -> str:
        if value[:1] in ("C", "c"):
            raise serializers.ValidationError(
                "Invoice numbers starting with C are cancellations; they come with the retail "
                "files and take no items."
            )
        return value


class ItemCreateSerializer(StrictSerializer):
    stock_code = serializers.CharField(
        max_length=32, help_text="A known stock code (GET /api/v1/stock-codes/{stock_code}/)."
    )
    quantity = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, help_text="Units sold: 1 or more."
    )
    unit_price = serializers.DecimalField(
        max_digits=14,
        decimal_places=3,
        min_value=Decimal(0),
        help_text="Price of one unit: 0 or more, at most 3 decimal places.",
        error_messages={"min_value": "The unit price must be 0 or more."},
    )


# -- output ---------------------------------------------------------------------------

INVOICE_NO_HELP = "The invoice number; a `C` first marks a cancellation."


class CustomerLinkSerializer(serializers.Serializer):
    customer_id = serializers.CharField(help_text="The customer's id.")
    url = serializers.URLField(help_text="The customer.")


class CustomerSerializer(serializers.Serializer):
    customer_id = serializers.CharField(help_text="The customer's id.")
    country = serializers.CharField(help_text="The customer's country, as in the data.")
    url = serializers.URLField(help_text="This customer.")
    invoices_url = serializers.URLField(help_text="The customer's invoices.")


class InvoiceSummarySerializer(serializers.Serializer):
    invoice_no = serializers.CharField(help_text=INVOICE_NO_HELP)
    invoice_date = serializers.DateTimeField(help_text="When it was issued.")
    cancelled = serializers.BooleanField(help_text="True for the `C` invoices.")
    url = serializers.URLField(help_text="The invoice, with its items.")


class ItemSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="Position of the item in its invoice (1-based).")
    stock_code = serializers.CharField(help_text="The product's stock code.")
    description = serializers.CharField(
        allow_null=True, help_text="The product's description; null if none recorded."
    )
    quantity = serializers.IntegerField(help_text="Negative on cancellations and adjustments.")
    unit_price = PriceField(help_text="Price of one unit: 2 decimals, or 3 when it has a third.")
    url = serializers.URLField(help_text="This item.")
    stock_code_url = serializers.URLField(help_text="The product's stock code.")
    invoice_url = serializers.URLField(help_text="The invoice it is on.")


class InvoiceSerializer(serializers.Serializer):
    invoice_no = serializers.CharField(help_text=INVOICE_NO_HELP)
    url = serializers.URLField(help_text="This invoice.")
    invoice_date = serializers.DateTimeField(help_text="When it was issued.")
    cancelled = serializers.BooleanField(help_text="True for the `C` invoices.")
    country = serializers.CharField(help_text="The country it was sold to.")
    customer = CustomerLinkSerializer(allow_null=True, help_text="null: no customer recorded.")
    items_url = serializers.URLField(help_text="POST an item here.")
    items = ItemSerializer(many=True, help_text="Its items, by `line`.")
    total = serializers.DecimalField(
        max_digits=20, decimal_places=2, help_text="Sum of quantity x unit_price, to the cent."
    )


class StockCodeSerializer(serializers.Serializer):
    stock_code = serializers.CharField(help_text="The product's stock code.")
    description = serializers.CharField(
        allow_null=True, help_text="The product's description; null if none recorded."
    )
    invoices = serializers.IntegerField(help_text="Current invoices with an item of it.")
    url = serializers.URLField(help_text="This stock code.")
