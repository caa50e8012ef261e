"""The metric endpoints: completed transactions in EUR, from the kept aggregates."""

from __future__ import annotations

import datetime as dt

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.fields import IntegerField
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Access, data_path
from accounts.access.permissions import ResourcePrivilege
from datalake.api import freshness
from datalake.api.conditional import Conditional
from datalake.api.filtering import reject_unknown_params
from datalake.api.pagination import PagePagination
from datalake.catalog.selectors import resource_entry
from datalake.platform import replicas
from datalake.query import snapshots
from metrics import scopes, selectors
from metrics.api import serializers as s


def params(request, serializer_class):
    reject_unknown_params(request, set(serializer_class().fields) | {"format"})
    data = serializer_class(data=request.query_params)
    data.is_valid(raise_exception=True)
    return data.validated_data


def query_parameters(serializer_class) -> list[OpenApiParameter]:
    """The serializer's fields as documented query parameters."""
    out = []
    for name, field in serializer_class().fields.items():
        kind = _integer_schema(field) if isinstance(field, IntegerField) else OpenApiTypes.STR
        description = str(field.help_text or name.replace("_", " "))
        out.append(OpenApiParameter(name, kind, required=field.required, description=description))
    return out


def _integer_schema(field: IntegerField) -> dict:
    """An integer with its bounds: clients (and the fuzzing) see the limits."""
    limits = {"minimum": field.min_value, "maximum": field.max_value}
    return {"type": "integer", **{k: v for k, v in limits.items() if v is not None}}


@data_path(
    "`resource` (transactions): figures over the rows and columns the caller's `read` "
    "grant shows (metrics.scopes); the sales metric over every row, so `read` unrestricted"
)
class MetricView(replicas.ReplicaReads, APIView):
    """A metric: figures of `resource` answered from what the `follower` derived, as of
    its position (`as_of_version`, `lag_seconds`; `?min_version=` waits for a version),
    over the rows the caller's grant lets through (a row filter is a scope of its own
    aggregates, metrics.scopes), its hidden columns refused and masked keys pseudonymised.
    `follower = None`: answered from the tables of `reads` directly (always current),
    for unrestricted readers only."""

    permission_classes = [ResourcePrivilege]
    required_privileges = {"get": "read"}
    resource = "transactions"
    metric: str = ""  # the name in metrics.scopes.NEEDS: the columns it reads
    follower: str | None = "metrics"
    reads = ("transactions",)  # the resources whose data the figures come from
    min_version: int | None = None
    key_filtered = False  # the request filters on a key column (`user_id=`)

    def params(self, request, serializer_class):
        validated = params(request, serializer_class)
        self.min_version = validated.get("min_version")
        return validated

    def conditional(self, request, compute, *inputs):
        """`compute(as_of, scope)`'s answer, or 304 if the client holds it: the ETag names
        the states read (the follower's position, or the states of `reads`), the request,
        the caller's restriction and `inputs` (what the figures depend on besides: a
        window that ends now, today's date)."""
        restriction = Access.of(request).restriction(self.resource)
        fingerprint = restriction.fingerprint()
        if self.follower is None:
            states = [snapshots.current(resource_entry(name)).label for name in self.reads]
            terms = Conditional(request, [*states, *map(str, inputs)], fingerprint)
            if terms.unchanged():
                return terms.not_modified(states[0])
            return terms.answer(compute(), states[0])
        scopes.check_columns(restriction, self.metric, key_filtered=self.key_filtered)
        state = freshness.require(self.follower, self.resource, self.min_version)
        label = str(state.derived_through_version)
        terms = Conditional(request, [f"{self.follower}:{label}", *map(str, inputs)], fingerprint)
        if terms.unchanged():
            return freshness.headers(terms.not_modified(label), state)
        # The figures read the follower's position in their own statement (one snapshot
        # with the aggregates): at least `state`'s version, never a mix of two.
        response = compute(None, scopes.scope_for(restriction))
        results = response.data.get("results")
        if restriction.masked and isinstance(results, list):
            restriction.mask_rows(results)  # masked keys: their pseudonyms
        response.data.update(freshness.body(state))
        return freshness.headers(terms.answer(response, label), state)

    def get_resource_name(self) -> str:
        return self.resource

    ranked_over_ranges = False  # its ranking over a range is kept (metrics.ranges)

    def replica_allowed(self, request) -> bool:
        """A row filter's scope is built on its first use and a ranking over a range is
        kept: both write, so those requests read the primary; the rest, a replica."""
        if Access.of(request).restriction(self.resource).rows is not None:
            return False
        ranged = {"since", "until"} & set(request.query_params)
        return not (self.ranked_over_ranges and ranged)

    def check_permissions(self, request):
        super().check_permissions(request)
        if self.follower is None:
            Access.of(request).require_unrestricted(self.resource, "Metrics")


class SpentLastMinutesView(MetricView):
    metric = "spent-last-minutes"

    @extend_schema(
        description="Money spent (completed transactions, EUR) in the last `minutes` minutes, "
        "up to now. Needs `read` on transactions.",
        parameters=query_parameters(s.SpentLastMinutesParams),
        responses=s.SpentLastMinutesBody,
        examples=[
            OpenApiExample(
                "Last 5 minutes",
                value={
                    "minutes": 5,
                    "from": "2026-11-23T09:55:00Z",
                    "to": "2026-11-23T10:00:00Z",
                    "total_eur": "1520.40",
                    "transactions": 17,
                },
                response_only=True,
            )
        ],
        tags=["metrics"],
    )
    def get(self, request):
        minutes = self.params(request, s.SpentLastMinutesParams)["minutes"]
        to = dt.datetime.now(dt.UTC)
        start = to - dt.timedelta(minutes=minutes)

        def compute(as_of, scope):
            total, count = selectors.spent_between(start, to, as_of, scope)
            body = {"minutes": minutes, "from": start, "to": to, "total_eur": total}
            return Response({**body, "transactions": count})

        return self.conditional(request, compute, to)


class SpentPerUserTypeView(MetricView):
    metric = "spent-per-user-type"
    ranked_over_ranges = True

    @extend_schema(
        description="Total spent (completed, EUR) per user and transaction type between "
        "`since` and `until` (inclusive, optional), largest total first. Paginated.",
        parameters=query_parameters(s.SpentPerUserTypeParams),
        responses=s.UserTypeTotal(many=True),
        examples=[
            OpenApiExample(
                "Per user and type",
                value={
                    "count": 8000,
                    "next": "http://localhost:8000/api/v1/metrics/spent-per-user-type/?page=2",
                    "previous": None,
                    "results": [
                        {
                            "user_id": "U00042",
                            "transaction_type": "online",
                            "total_eur": "4210.77",
                            "transactions": 31,
                        }
                    ],
                },
                response_only=True,
            )
        ],
        tags=["metrics"],
    )
    def get(self, request):
        p = self.params(request, s.SpentPerUserTypeParams)
        self.key_filtered = bool(p.get("user_id"))
        split = selectors.split_days(p.get("since"), p.get("until"))
        paginator = PagePagination()
        size = paginator.get_page_size(request)
        page = p.get("page", 1)

        def compute(as_of, scope):
            rows, count, estimated = selectors.spent_per_user_type(
                split, p.get("user_id"), size, (page - 1) * size, as_of, scope
            )
            response = paginator_response(request, paginator, rows, count, page, size)
            response.data["count_is_estimate"] = estimated
            return response

        return self.conditional(request, compute)


def paginator_response(request, paginator, rows, count, page, size):
    """The standard page body for results computed in SQL; a page past the end is a 404."""
    from rest_framework.exceptions import NotFound
    from rest_framework.utils.urls import remove_query_param, replace_query_param

    if not rows and page > 1:
        raise NotFound(f"Page {page} is past the end of the results.")
    url = request.build_absolute_uri()
    nxt = replace_query_param(url, "page", page + 1) if page * size < count else None
    prev = None
    if page > 1:
        prev = (
            remove_query_param(url, "page")
            if page == 2
            else replace_query_param(url, "page", page - 1)
        )
    return Response({"count": count, "next": nxt, "previous": prev, "results": rows})


class TopProductsView(MetricView):
    metric = "top-products"
    ranked_over_ranges = True

    @extend_schema(
        description="The `x` products bought most (sum of quantities of completed "
        "transactions) between `since` and `until`; ties by product_id ascending.",
        parameters=query_parameters(s.TopProductsParams),
        responses=s.TopProductsBody,
        examples=[
            OpenApiExample(
                "Top 2",
                value={
                    "x": 2,
                    "results": [
                        {"rank": 1, "product_id": "P0007", "quantity": 912, "transactions": 301},
                        {"rank": 2, "product_id": "P0131", "quantity": 877, "transactions": 296},
                    ],
                },
                response_only=True,
            )
        ],
        tags=["metrics"],
    )
    def get(self, request):
        p = self.params(request, s.TopProductsParams)
        split = selectors.split_days(p.get("since"), p.get("until"))
        x = p["x"]
        return self.conditional(
            request,
            lambda as_of, scope: Response(
                {"x": x, "results": selectors.top_products(split, x, as_of, scope)}
            ),
        )


class ProductSalesView(MetricView):
    resource = "sales"
    follower = None  # the daily sales dumps, read as they are
    reads = ("sales", "product_daily_sales")

    @extend_schema(
        description="How often the product was sold in the `days` days ending on `until` "
        "(default today), from the daily sales dumps; every day present, zeros included. "
        "Needs `read` on sales.",
        parameters=[
            OpenApiParameter(
                "product_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Product id."
            ),
            *query_parameters(s.ProductSalesParams),
        ],
        responses=s.ProductSalesBody,
        examples=[
            OpenApiExample(
                "Three days",
                value={
                    "product_id": "P0007",
                    "days": 3,
                    "from": "2026-11-18",
                    "until": "2026-11-20",
                    "times_sold": 5,
                    "per_day": [
                        {"date": "2026-11-18", "times_sold": 2},
                        {"date": "2026-11-19", "times_sold": 0},
                        {"date": "2026-11-20", "times_sold": 3},
                    ],
                },
                response_only=True,
            )
        ],
        tags=["metrics"],
    )
    def get(self, request, product_id: str):
        p = params(request, s.ProductSalesParams)
        first = p["first"]

        def compute():
            per_day = selectors.product_sales(product_id, first, p["until"])
            return Response(
                {
                    "product_id": product_id,
                    "days": p["days"],
                    "from": first,
                    "until": p["until"],
                    "times_sold": sum(d["times_sold"] for d in per_day),
                    "per_day": per_day,
                }
            )

        return self.conditional(request, compute, first, p["until"])
