"""Parameters and bodies of the metric endpoints (strict: anything else is a 400)."""

import datetime as dt

from rest_framework import serializers

from datalake.api.bounds import RANGE_TEXT, BoundedDateField, WholeNumberField, days_before
from datalake.api.filtering import parse_instant
from datalake.api.freshness import FreshnessParams


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


class RangeParams(FreshnessParams):
    since = InstantField(required=False, help_text="From this date or timestamp (inclusive).")
    until = InstantField(
        end=True, required=False, help_text="Up to this date or timestamp (inclusive)."
    )


class SpentLastMinutesParams(FreshnessParams):
    minutes = serializers.IntegerField(
        default=5, min_value=1, max_value=1440, help_text="The window, 1..1440 (default 5)."
    )


TOTAL_HELP = "Sum of `amount_eur` of the completed transactions, in euros."
AS_OF_HELP = "The version of transactions the figures include (the metrics follower's position)."
LAG_HELP = "Seconds since the oldest version not yet included was made (0: up to date)."


class Freshness(serializers.Serializer):
    as_of_version = serializers.IntegerField(help_text=AS_OF_HELP)
    lag_seconds = serializers.FloatField(help_text=LAG_HELP)


COUNT_HELP = "How many completed transactions."


class SpentLastMinutesBody(Freshness):
    minutes = serializers.IntegerField(help_text="The window asked for, in minutes.")
    from_ = serializers.DateTimeField(help_text="Start of the window (inclusive).")
    to = serializers.DateTimeField(help_text="End of the window (inclusive): now.")
    total_eur = serializers.DecimalField(max_digits=20, decimal_places=2, help_text=TOTAL_HELP)
    transactions = serializers.IntegerField(help_text=COUNT_HELP)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class SpentPerUserTypeParams(RangeParams):
    user_id = serializers.CharField(required=False, max_length=64, help_text="One user only.")
    page = WholeNumberField(required=False)
    page_size = WholeNumberField(required=False)


class UserTypeTotal(serializers.Serializer):
    user_id = serializers.CharField(help_text="The user who made the transactions.")
    transaction_type = serializers.CharField(help_text="Their type, e.g. `purchase`.")
    total_eur = serializers.DecimalField(max_digits=20, decimal_places=2, help_text=TOTAL_HELP)
    transactions = serializers.IntegerField(help_text=COUNT_HELP)


class TopProductsParams(RangeParams):
    x = serializers.IntegerField(min_value=1, max_value=1000, help_text="How many, 1..1000.")


class RankedProduct(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 for the largest quantity.")
    product_id = serializers.CharField(help_text="The product.")
    quantity = serializers.IntegerField(help_text="Sum of quantities of completed sales.")
    transactions = serializers.IntegerField(help_text="Completed transactions of it.")


class TopProductsBody(Freshness):
    x = serializers.IntegerField(help_text="How many products were asked for.")
    results = RankedProduct(
        many=True, help_text="At most `x` products, by quantity, ties by `product_id`."
    )


class ProductSalesParams(serializers.Serializer):
    days = serializers.IntegerField(default=7, min_value=1, max_value=366)
    until = BoundedDateField(required=False, help_text="Last day (default: today, UTC).")

    def validate(self, attrs):
        """Adds `first`, the first day of the window (a 400 naming `days` before 0001)."""
        attrs.setdefault("until", dt.datetime.now(dt.UTC).date())
        attrs["first"] = days_before(attrs["until"], attrs["days"] - 1, "days")
        return attrs


class DaySales(serializers.Serializer):
    date = serializers.DateField(help_text="The day.")
    times_sold = serializers.IntegerField(help_text="Times the product was sold that day.")


class ProductSalesBody(serializers.Serializer):
    product_id = serializers.CharField(help_text="The product.")
    days = serializers.IntegerField(help_text="How many days, ending on `until`.")
    from_ = serializers.DateField(help_text="The first day (inclusive).")
    until = serializers.DateField(help_text="The last day (inclusive).")
    times_sold = serializers.IntegerField(help_text="Times sold over the whole span.")
    per_day = DaySales(many=True, help_text="Every day of the span in order, zeros included.")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields
