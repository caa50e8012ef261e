"""OpenAPI examples and parameters of the retail API (real rows of the data set)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter

API = "http://localhost:8000/api/v1"

CUSTOMER = {
    "customer_id": "17850",
    "country": "United Kingdom",
    "url": f"{API}/customers/17850/",
    "invoices_url": f"{API}/customers/17850/invoices/",
}
ITEM = {
    "line": 1,
    "stock_code": "85123A",
    "description": "WHITE HANGING HEART T-LIGHT HOLDER",
    "quantity": 6,
    "unit_price": "2.55",
    "url": f"{API}/invoices/536365/items/1/",
    "stock_code_url": f"{API}/stock-codes/85123A/",
    "invoice_url": f"{API}/invoices/536365/",
}
INVOICE = {
    "invoice_no": "536365",
    "url": f"{API}/invoices/536365/",
    "invoice_date": "2010-12-01T08:26:00Z",
    "cancelled": False,
    "country": "United Kingdom",
    "customer": {"customer_id": "17850", "url": f"{API}/customers/17850/"},
    "items_url": f"{API}/invoices/536365/items/",
    "items": [
        ITEM,
        {
            **ITEM,
            "line": 2,
            "stock_code": "71053",
            "description": "WHITE METAL LANTERN",
            "unit_price": "3.39",
            "url": f"{API}/invoices/536365/items/2/",
            "stock_code_url": f"{API}/stock-codes/71053/",
        },
    ],
    "total": "35.64",
}
NEW_INVOICE = {
    **INVOICE,
    "invoice_no": "600001",
    "url": f"{API}/invoices/600001/",
    "invoice_date": "2011-12-10T09:00:00Z",
    "items_url": f"{API}/invoices/600001/items/",
    "items": [],
    "total": "0.00",
}
STOCK_CODE = {
    "stock_code": "85123A",
    "description": "WHITE HANGING HEART T-LIGHT HOLDER",
    "invoices": 2203,
    "url": f"{API}/stock-codes/85123A/",
}


def page(*results) -> dict:
    return {"count": len(results), "next": None, "previous": None, "results": list(results)}


def response(name: str, value, status: str = "200") -> OpenApiExample:
    return OpenApiExample(name, value=value, response_only=True, status_codes=[status])


def request(name: str, value) -> OpenApiExample:
    return OpenApiExample(name, value=value, request_only=True)


CUSTOMER_ID = OpenApiParameter(
    "customer_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The customer's id."
)
INVOICE_NO = OpenApiParameter(
    "invoice_no",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The invoice number (`C...`: a cancellation, `A...`: an adjustment).",
)
LINE = OpenApiParameter(
    "line", OpenApiTypes.INT, OpenApiParameter.PATH, description="The item's line (1-based)."
)
STOCK_CODE_PARAM = OpenApiParameter(
    "stock_code",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The stock code, URL-encoded (e.g. `85123A`, `BANK%20CHARGES`).",
)
PAGE_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, description="Page number (1-based)."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="Items per page, at most 10."),
]
