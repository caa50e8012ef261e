"""Parameters and bodies of the metric endpoints (strict: anything else is a 400)."""

import datetime as dt

from rest_framework import serializers

from datalake.api.bounds import RANGE_TEXT, BoundedDateField, WholeNumberField, days_before
from datalake.api.filtering import parse_instant


class InstantField(serializers.CharField):
    """A date or an ISO timestamp; a date covers its whole UTC day."""

    def __init__(self, *, end: bool = False, **kwargs):
        self.end = end
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        try:
            return parse_instant(text, end=self.end)
        except ValueError:
            raise serializers.ValidationError(
                f"Give a date (YYYY-MM-DD) or an ISO 8601 timestamp with a time zone, {RANGE_TEXT}."
            ) from None


class RangeParams(serializers.Serializer):
    since = InstantField(required=False, help_text="From this date or timestamp (inclusive).")
    until = InstantField(
        end=True, required=False, help_text="Up to this date or timestamp (inclusive)."
    )


class SpentLastMinutesParams(serializers.Serializer):
    minutes = serializers.IntegerField(
        default=5, min_value=1, max_value=1440, help_text="The window, 1..1440 (default 5)."
    )


class SpentLastMinutesBody(serializers.Serializer):
    minutes = serializers.IntegerField()
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    total_eur = serializers.DecimalField(max_digits=20, decimal_places=2)
    transactions = serializers.IntegerField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class SpentPerUserTypeParams(RangeParams):
    user_id = serializers.CharField(required=False, max_length=64, help_text="One user only.")
    page = WholeNumberField(required=False)
    page_size = WholeNumberField(required=False)


class UserTypeTotal(serializers.Serializer):
    user_id = serializers.CharField()
    transaction_type = serializers.CharField()
    total_eur = serializers.DecimalField(max_digits=20, decimal_places=2)
    transactions = serializers.IntegerField()


class TopProductsParams(RangeParams):
    x = serializers.IntegerField(min_value=1, max_value=1000, help_text="How many, 1..1000.")


class RankedProduct(serializers.Serializer):
    rank = serializers.IntegerField()
    product_id = serializers.CharField()
    quantity = serializers.IntegerField(help_text="Sum of quantities of completed sales.")
    transactions = serializers.IntegerField()


class TopProductsBody(serializers.Serializer):
    x = serializers.IntegerField()
    results = RankedProduct(many=True)


class ProductSalesParams(serializers.Serializer):
    days = serializers.IntegerField(default=7, min_value=1, max_value=366)
    until = BoundedDateField(required=False, help_text="Last day (default: today, UTC).")

    def validate(self, attrs):
        """Adds `first`, the first day of the window (a 400 naming `days` before 0001)."""
        attrs.setdefault("until", dt.datetime.now(dt.UTC).date())
        attrs["first"] = days_before(attrs["until"], attrs["days"] - 1, "days")
        return attrs


class DaySales(serializers.Serializer):
    date = serializers.DateField()
    times_sold = serializers.IntegerField()


class ProductSalesBody(serializers.Serializer):
    product_id = serializers.CharField()
    days = serializers.IntegerField()
    from_ = serializers.DateField()
    until = serializers.DateField()
    times_sold = serializers.IntegerField()
    per_day = DaySales(many=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields
