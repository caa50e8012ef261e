"""The built-in reports: each takes a date range and include/exclude lists."""

from __future__ import annotations

from rest_framework import serializers

from metrics.api.serializers import InstantField
from metrics.reports.base import ReportType


class RangeParams(serializers.Serializer):
    since = InstantField(required=False, help_text="From this date or timestamp (inclusive).")
    until = InstantField(end=True, required=False, help_text="Up to this date or timestamp.")

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] > attrs["until"]:
            raise serializers.ValidationError("`since` is after `until`.")
        return attrs


def _id_list(help_text: str):
    return serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=1000,
        help_text=help_text,
    )  # fmt: skip


def _where(params: dict, column: str) -> tuple[str, list]:
    """Completed current transactions within the range and the include/exclude lists."""
    parts, args = ["valid_to IS NULL", "status = 'completed'"], []
    if params.get("since"):
        parts.append("timestamp >= %s")
        args.append(params["since"])
    if params.get("until"):
        parts.append("timestamp <= %s")
        args.append(params["until"])
    if params.get("include"):
        parts.append(f"{column} = ANY(%s)")
        args.append(list(params["include"]))
    if params.get("exclude"):
        parts.append(f"NOT ({column} = ANY(%s))")
        args.append(list(params["exclude"]))
    return " AND ".join(parts), args


class TopProductsParams(RangeParams):
    include = _id_list("Only these product ids.")
    exclude = _id_list("Never these product ids.")
    limit = serializers.IntegerField(default=100, min_value=1, max_value=100_000)


class TopProducts(ReportType):
    name = "top-products"
    description = "Products ranked by quantity sold (completed transactions), with EUR totals."
    columns = ("rank", "product_id", "quantity", "transactions", "total_eur")
    Params = TopProductsParams

    def sql(self, params):
        where, args = _where(params, "product_id")
        return (
            "SELECT row_number() OVER (ORDER BY sum(quantity) DESC, product_id), product_id, "
            "sum(quantity), count(*), sum(amount_eur)::text FROM transactions "
            f"WHERE {where} GROUP BY product_id ORDER BY 3 DESC, 2 LIMIT %s",
            [*args, params["limit"]],
        )


class CountryParams(RangeParams):
    include = _id_list("Only these countries (ISO codes).")
    exclude = _id_list("Never these countries.")


class SpendPerCountry(ReportType):
    name = "spend-per-country"
    description = "Money spent per country (completed transactions, EUR), largest first."
    columns = ("country", "total_eur", "transactions", "average_eur")
    Params = CountryParams

    def sql(self, params):
        where, args = _where(params, "country")
        return (
            "SELECT country, sum(amount_eur)::text, count(*), round(avg(amount_eur), 2)::text "
            f"FROM transactions WHERE {where} GROUP BY country ORDER BY sum(amount_eur) DESC, 1",
            args,
        )


class CategoryParams(RangeParams):
    include = _id_list("Only these product categories.")
    exclude = _id_list("Never these product categories.")


class RatingsPerCategory(ReportType):
    name = "ratings-per-category"
    description = "Customer ratings per product category: how many, average, distribution."
    columns = ("product_category", "ratings", "average", "r1", "r2", "r3", "r4", "r5")
    Params = CategoryParams

    def sql(self, params):
        where, args = _where(params, "product_category")
        counts = ", ".join(f"count(*) FILTER (WHERE customer_rating = {r})" for r in range(1, 6))
        return (
            "SELECT coalesce(product_category, '(none)'), count(customer_rating), "
            f"round(avg(customer_rating), 2)::text, {counts} FROM transactions "
            f"WHERE {where} GROUP BY 1 ORDER BY 1",
            args,
        )
