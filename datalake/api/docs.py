"""OpenAPI descriptions and examples of the catalog endpoints."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

ROWS_DESCRIPTION = (
    "The records of a resource (needs `read`), at most 10 a page. Projection with "
    "`fields`, ordering with `ordering` (default: the key), filters `col`, `col__gt`, "
    "`col__gte`, `col__lt`, `col__lte`, `col__in` on the columns whose catalog entry "
    "lists the operator. Walk deep with `cursor=<next_cursor>` (constant time at any "
    "depth); `page=N` is an offset. A walk by cursor reads the data its first page read "
    "(`X-Data-Version`, `data_version`) to its end, whatever lands meanwhile; a cursor "
    "is sealed for its caller and query (tampered or another's: 400 naming `cursor`); "
    "a walk whose data is no longer kept (a table without versions changed, a folder's "
    "file changed) is a 410 `snapshot_expired`. Each answer has a weak `ETag`: "
    "`If-None-Match` answers 304 without running the query. Unknown parameters, "
    "columns or badly typed values "
    "are a 400 naming the parameter; a page past the end is a 404. Above "
    "10,000 matching rows `count` is the planner's estimate and `count_is_estimate` is "
    "true. The per-table filters are listed under each `/resources/<table>/rows/` path. "
    "A table's page whose estimated cost (the planner's, of the exact page statement) is "
    "above the limit is refused before it runs: 400 `query_too_expensive` with "
    "`estimated_cost`, `max_cost` and `hints` (a filter on an indexed column, `cursor` "
    "instead of a deep `page=`, an order by an indexed column); staff may pass "
    "`cost_guard=off`. Raw-file folders are not guarded (read whole in memory).\n\n"
    "**Exports.** `Accept: text/csv` or `Accept: application/vnd.apache.arrow.stream` (or "
    "`?format=csv` / `?format=arrow`) streams *every* row of the same query (filters, "
    "`fields`, `ordering`, your grant's restriction), not a page, read from one consistent "
    "state whose version is in `X-Data-Version`; `page`, `cursor` and `page_size` are then "
    'a 400. CSV: a header line, UTF-8, NULL as an empty field and an empty text as `""`, '
    "timestamps as `2026-11-20T13:45:12.000000Z`, arrays as JSON, text starting with "
    "`=`, `+`, `-`, `@`, a tab or a carriage return "
    "prefixed with `'`. Arrow: an IPC stream (`pyarrow.ipc.open_stream`) of typed record "
    "batches (decimals as decimal128, timestamps in UTC, masked columns as text). Errors "
    "before the first byte are the JSON envelope; an error after it aborts the transfer "
    "(truncated body; an Arrow stream without its end-of-stream marker)."
)

NAME_PARAMETER = OpenApiParameter(
    "name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="Resource name, e.g. `transactions` or `raw_transactions`.",
)

VERSION_PARAMETER = OpenApiParameter(
    "n", OpenApiTypes.INT, OpenApiParameter.PATH, description="The version number."
)

PAGE_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, description="Page number (1-based)."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="Items per page, at most 10."),
]

ACCESS_LOG_PARAMETERS = [
    OpenApiParameter("user", OpenApiTypes.STR, description="Only this username's requests."),
    OpenApiParameter(
        "since", OpenApiTypes.STR, description="From this date or timestamp (inclusive)."
    ),
    OpenApiParameter(
        "until", OpenApiTypes.STR, description="Up to this date or timestamp (inclusive)."
    ),
]

ROWS_PARAMETERS = [
    NAME_PARAMETER,
    *PAGE_PARAMETERS,
    OpenApiParameter("cursor", OpenApiTypes.STR, description="`next_cursor` of the previous page."),
    OpenApiParameter(
        "fields",
        OpenApiTypes.STR,
        description="Comma-separated columns to return.",
        examples=[OpenApiExample("Projection", value="transaction_id,amount,country")],
    ),
    OpenApiParameter(
        "format",
        OpenApiTypes.STR,
        enum=["json", "csv", "arrow"],
        description="The answer's format instead of the `Accept` header: `json` (pages), "
        "`csv` or `arrow` (an export of every row); in a browser `api` is the browsable API.",
    ),
    OpenApiParameter(
        "ordering",
        OpenApiTypes.STR,
        description="Comma-separated columns, `-` for descending; the key breaks ties.",
        examples=[OpenApiExample("Ordering", value="-amount,timestamp")],
    ),
    OpenApiParameter(
        "cost_guard",
        OpenApiTypes.STR,
        enum=["on", "off"],
        description="Staff only: `off` runs a query the cost guard would refuse (400 "
        "`query_too_expensive`); from anyone else a 403. Default `on`.",
        examples=[OpenApiExample("Override (staff)", value="off")],
    ),
]

QUERY_TOO_EXPENSIVE_EXAMPLE = OpenApiExample(
    "A deep page refused by the cost guard",
    value={
        "detail": "This query is estimated to cost 241,854, above the limit of 10,000. "
        "Walk with `cursor=<next_cursor>` from page 1 instead of `page=500000` (an offset "
        "of 4,999,990 rows that must be read and skipped). Add a filter on an indexed "
        "column: transaction_id, country, payment_method, ...",
        "code": "query_too_expensive",
        "estimated_cost": 241854.3,
        "max_cost": 10000.0,
        "hints": [
            "Walk with `cursor=<next_cursor>` from page 1 instead of `page=500000` (an "
            "offset of 4,999,990 rows that must be read and skipped).",
            "Add a filter on an indexed column: transaction_id, country, payment_method, ...",
        ],
    },
    response_only=True,
    status_codes=["400"],
)

TRANSACTION_ROW = {
    "transaction_id": "TX-20261120-000123",
    "user_id": "U00042",
    "timestamp": "2026-11-20T13:45:12Z",
    "transaction_type": "online",
    "payment_method": "card",
    "country": "FR",
    "product_id": "P0007",
    "product_category": "books",
    "quantity": 2,
    "amount": "59.90",
    "currency": "EUR",
    "amount_eur": "59.90",
    "status": "completed",
    "customer_rating": 5,
}

ROWS_EXAMPLE = OpenApiExample(
    "A page of transactions",
    value={
        "count": 157342,
        "count_is_estimate": True,
        "next": "http://localhost:8000/api/v1/resources/transactions/rows/?country=FR&page=2",
        "previous": None,
        "next_cursor": "AqSpAVsu6YVb9pvb1YHfJZdUSoTeOkASZpqkNURGhO4FJnX_5MVtrx-LZlTtC0B8",
        "data_version": "42",
        "results": [TRANSACTION_ROW],
    },
    response_only=True,
)

RESOURCE_EXAMPLE = OpenApiExample(
    "The transactions table",
    value={
        "name": "transactions",
        "kind": "table",
        "description": "Transactions from the daily files and the live pipeline, with amount_eur.",
        "columns": [
            {"name": "transaction_id", "type": "string", "filters": ["eq", "in"]},
            {
                "name": "amount",
                "type": "decimal",
                "filters": ["eq", "gt", "gte", "lt", "lte", "in"],
            },
        ],
        "versioning": True,
        "current_version": 3,
        "row_count": 10000000,
        "access": ["read"],
        "url": "http://localhost:8000/api/v1/resources/transactions/",
    },
    response_only=True,
)

RESOURCE_EXAMPLE_LIST = OpenApiExample(
    "The catalog",
    value={"count": 12, "next": None, "previous": None, "results": [RESOURCE_EXAMPLE.value]},
    response_only=True,
)

ACCESS_LOG_EXAMPLE = OpenApiExample(
    "Who accessed transactions",
    value={
        "count": 1,
        "next": None,
        "previous": None,
        "results": [
            {
                "user": "alice",
                "at": "2026-11-23T10:00:00.123456Z",
                "method": "GET",
                "path": "/api/v1/resources/transactions/rows/",
                "query": {"country": "FR"},
                "status_code": 200,
            }
        ],
    },
    response_only=True,
)

VERSIONS_EXAMPLE = OpenApiExample(
    "Versions of transactions",
    value={
        "count": 2,
        "next": None,
        "previous": None,
        "results": [
            {
                "version": 2,
                "created_at": "2026-11-21T02:00:19Z",
                "source": "ingestion:42",
                "rows_added": 9997,
                "rows_changed": 3,
                "rows_removed": 0,
            },
            {
                "version": 1,
                "created_at": "2026-11-20T02:00:17Z",
                "source": "ingestion:41",
                "rows_added": 10000,
                "rows_changed": 0,
                "rows_removed": 0,
            },
        ],
    },
    response_only=True,
)


def rows_responses(page_serializer) -> dict:
    """A `rows/` answer: a JSON page, or an export (CSV, Arrow) of every row."""
    described = "A JSON page of at most 10 rows; CSV or Arrow: an export of every row."
    return {
        (200, "application/json"): OpenApiResponse(page_serializer, description=described),
        (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=described),
        (200, "application/vnd.apache.arrow.stream"): OpenApiResponse(
            OpenApiTypes.BINARY, description=described
        ),
    }


ROWS_CSV_EXAMPLE = OpenApiExample(
    "A CSV export",
    value="transaction_id,country,amount\nTX-20261120-000123,FR,59.90\n"
    "TX-20261120-000124,DE,12.00\n",
    media_type="text/csv",
    response_only=True,
)
