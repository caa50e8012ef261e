"""The retail endpoints (API.md, Retail resources).

GET needs `read` on every retail table the answer draws on (an invoice with its items:
`retail_invoices` and `retail_invoice_items`); POST needs `write` on the table it adds
to and `read` on every table it looks up or copies from (`lookups`), checked before
any lookup, so that a 404, a 400 or a copied value never tells a writer what it cannot
read. Under a restricted `read` grant (columns, row filter, masks) these endpoints,
which serve whole records linked by their keys, answer 403 `restricted_grant`;
`/resources/<table>/rows/` serves what such a grant shows.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from accounts.access import Access, data_path
from accounts.access.permissions import ResourcePrivilege
from datalake.api.errors import ErrorSerializer
from datalake.api.filtering import PAGING_PARAMS, reject_unknown_params
from datalake.api.pagination import PagePagination
from datalake.errors import AccessDenied
from datalake.retail import examples as ex
from datalake.retail import selectors, services
from datalake.retail import serializers as s

CUSTOMERS = "retail_customers"
INVOICES = "retail_invoices"
ITEMS = "retail_invoice_items"
STOCK_CODES = "retail_stock_codes"
ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


@lru_cache(maxsize=65536)
def _segment(value: str) -> str:
    return quote(value, safe="")


class Links:
    """Absolute URLs of retail objects: each route reversed once per request, then filled."""

    MARK = "__key__"

    def __init__(self, request):
        self.request, self.prefixes = request, {}

    def _url(self, name: str, key: str, value) -> str:
        if name not in self.prefixes:
            url = reverse(name, kwargs={key: self.MARK}, request=self.request)
            self.prefixes[name] = url.split(self.MARK, 1)
        head, tail = self.prefixes[name]
        return head + _segment(str(value)) + tail

    def customer(self, customer_id: str) -> str:
        return self._url("retail-customer-detail", "customer_id", customer_id)

    def customer_invoices(self, customer_id: str) -> str:
        return self._url("retail-customer-invoices", "customer_id", customer_id)

    def invoice(self, invoice_no: str) -> str:
        return self._url("retail-invoice-detail", "invoice_no", invoice_no)

    def items(self, invoice_no: str) -> str:
        return self._url("retail-invoice-items", "invoice_no", invoice_no)

    def stock_code(self, stock_code: str) -> str:
        return self._url("retail-stock-code-detail", "stock_code", stock_code)


def customer_body(links: Links, row: dict) -> dict:
    customer_id = row["customer_id"]
    return {
        "customer_id": customer_id,
        "country": row["country"],
        "url": links.customer(customer_id),
        "invoices_url": links.customer_invoices(customer_id),
    }


def items_body(links: Links, invoice_no: str, rows) -> list[dict]:
    """Items as `ItemSerializer` documents them, built directly (an invoice may have
    hundreds): the invoice's URLs are made once, each item adds its line and code."""
    invoice_url, items_url = links.invoice(invoice_no), links.items(invoice_no)
    price, stock_code = s.price_text, links.stock_code
    return [
        {
            **row,
            "unit_price": price(row["unit_price"]),
            "url": f"{items_url}{row['line']}/",
            "stock_code_url": stock_code(row["stock_code"]),
            "invoice_url": invoice_url,
        }
        for row in rows
    ]


def item_body(links: Links, invoice_no: str, row: dict) -> dict:
    return items_body(links, invoice_no, [row])[0]


def invoice_body(links: Links, row: dict, items: list[dict]) -> dict:
    invoice_no, customer_id = row["invoice_no"], row["customer_id"]
    customer = None
    if customer_id:
        customer = {"customer_id": customer_id, "url": links.customer(customer_id)}
    return {
        "invoice_no": invoice_no,
        "url": links.invoice(invoice_no),
        "invoice_date": row["invoice_date"],
        "cancelled": row["cancelled"],
        "country": row["country"],
        "customer": customer,
        "items_url": links.items(invoice_no),
        "items": items_body(links, invoice_no, items),
        "total": str(selectors.invoice_total(items)),
    }


@data_path("`resources` (per HTTP method) and, for a write, the tables it `lookups`")
class RetailView(APIView):
    """The grant check of every retail endpoint: `resources` per HTTP method."""

    permission_classes = [ResourcePrivilege]
    required_privileges = {"get": "read", "post": "write"}
    resources: dict[str, tuple[str, ...]] = {}
    # Per method, the tables a write looks up (existence, duplicates, next line) or
    # copies from: each needs an unrestricted `read`, checked before any lookup.
    lookups: dict[str, tuple[str, ...]] = {}

    def get_resource_names(self) -> list[str]:
        method = self.request.method.lower()
        return list(self.resources["get" if method == "head" else method])

    def check_permissions(self, request):
        super().check_permissions(request)
        access = Access.of(request)
        if request.method in ("GET", "HEAD"):
            read = self.get_resource_names()
        else:
            read = list(self.lookups.get(request.method.lower(), ()))
            message = "You need the `read` privilege on {resource!r}: this write looks it up."
            access.require_all("read", read, message)
        for name in read:
            if access.restriction(name).restricted:
                raise AccessDenied(
                    f"Your grant on {name!r} is restricted (columns, row filter or masks) "
                    f"and this endpoint serves whole records; read {name!r} through "
                    f"/api/v1/resources/{name}/rows/.",
                    code="restricted_grant",
                )

    def paginate(self, queryset, build):
        reject_unknown_params(self.request, PAGING_PARAMS)
        paginator = PagePagination()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response([build(row) for row in page])

    def details_only(self) -> None:
        reject_unknown_params(self.request, {"format"})


class CustomerListView(RetailView):
    resources = {"get": (CUSTOMERS,), "post": (CUSTOMERS,)}
    lookups = {"post": (CUSTOMERS,)}

    @extend_schema(
        operation_id="retail_customers_list",
        description="Every customer of the retail data, by customer_id. Needs `read` on "
        "retail_customers. Paginated.",
        parameters=ex.PAGE_PARAMETERS,
        responses={200: s.CustomerSerializer(many=True), 400: ErrorSerializer},
        examples=[ex.response("Customers", ex.page(ex.CUSTOMER))],
        tags=["retail"],
    )
    def get(self, request):
        links = Links(request)
        return self.paginate(selectors.customer_list(), lambda row: customer_body(links, row))

    @extend_schema(
        operation_id="retail_customers_create",
        description="Add a customer: a new version of retail_customers (needs `write` on it). "
        "Also needs an unrestricted `read` on it (403 first). 201 with the customer and its "
        "`url`. An id already taken: 400 naming customer_id.",
        request=s.CustomerCreateSerializer,
        responses={201: s.CustomerSerializer, **ERRORS},
        examples=[
            ex.request("A customer", {"customer_id": "90001", "country": "Germany"}),
            ex.response(
                "Created",
                {
                    "customer_id": "90001",
                    "country": "Germany",
                    "url": f"{ex.API}/customers/90001/",
                    "invoices_url": f"{ex.API}/customers/90001/invoices/",
                },
                "201",
            ),
        ],
        tags=["retail"],
    )
    def post(self, request):
        self.details_only()
        data = s.CustomerCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.customer_create(user=request.user, **data.validated_data)
        body = customer_body(Links(request), row)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class CustomerDetailView(RetailView):
    resources = {"get": (CUSTOMERS,)}

    @extend_schema(
        operation_id="retail_customers_retrieve",
        description="One customer, with the link to its invoices. Needs `read` on "
        'retail_customers. Unknown: 404 `{"detail"}`.',
        parameters=[ex.CUSTOMER_ID],
        responses={200: s.CustomerSerializer, 404: ErrorSerializer},
        examples=[ex.response("A customer", ex.CUSTOMER)],
        tags=["retail"],
    )
    def get(self, request, customer_id: str):
        self.details_only()
        row = selectors.customer_get(customer_id)
        if row is None:
            raise NotFound(f"No customer {customer_id}.")
        return Response(customer_body(Links(request), row))


class CustomerInvoicesView(RetailView):
    resources = {"get": (CUSTOMERS, INVOICES), "post": (INVOICES,)}
    lookups = {"post": (CUSTOMERS, INVOICES)}

    @extend_schema(
        operation_id="retail_customer_invoices_list",
        description="The customer's invoices, oldest first, paginated. Needs `read` on "
        "retail_customers and retail_invoices. Unknown customer: 404.",
        parameters=[ex.CUSTOMER_ID, *ex.PAGE_PARAMETERS],
        responses={200: s.InvoiceSummarySerializer(many=True), 404: ErrorSerializer},
        examples=[
            ex.response(
                "Invoices",
                ex.page(
                    {
                        "invoice_no": "536365",
                        "invoice_date": "2010-12-01T08:26:00Z",
                        "cancelled": False,
                        "url": f"{ex.API}/invoices/536365/",
                    }
                ),
            )
        ],
        tags=["retail"],
    )
    def get(self, request, customer_id: str):
        if selectors.customer_get(customer_id) is None:
            raise NotFound(f"No customer {customer_id}.")
        links = Links(request)
        return self.paginate(
            selectors.customer_invoices(customer_id),
            lambda row: {**row, "url": links.invoice(row["invoice_no"])},
        )

    @extend_schema(
        operation_id="retail_customer_invoices_create",
        description="Open an invoice for the customer (in the customer's country): a new "
        "version of retail_invoices (needs `write` on it, and an unrestricted `read` on "
        "retail_customers and retail_invoices, checked first: 403 before any 404). 201 with "
        "the invoice, its `url` "
        "and `customer.url`. Unknown customer: 404; a number already used, or starting with "
        "`C` (cancellations come with the files): 400.",
        parameters=[ex.CUSTOMER_ID],
        request=s.InvoiceCreateSerializer,
        responses={201: s.InvoiceSerializer, **ERRORS},
        examples=[
            ex.request(
                "An invoice", {"invoice_no": "600001", "invoice_date": "2011-12-10T09:00:00Z"}
            ),
            ex.response("Created", ex.NEW_INVOICE, "201"),
        ],
        tags=["retail"],
    )
    def post(self, request, customer_id: str):
        self.details_only()
        data = s.InvoiceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.invoice_create(
            customer_id=customer_id, user=request.user, **data.validated_data
        )
        body = invoice_body(Links(request), row, [])
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class InvoiceDetailView(RetailView):
    resources = {"get": (INVOICES, ITEMS)}

    @extend_schema(
        operation_id="retail_invoices_retrieve",
        description="An invoice with its items and total (sum of quantity x unit_price, to "
        "the cent). `customer` is null when the data names none; `cancelled` is true for "
        "the `C` invoices. Needs `read` on retail_invoices and retail_invoice_items. "
        "Unknown: 404.",
        parameters=[ex.INVOICE_NO],
        responses={200: s.InvoiceSerializer, 404: ErrorSerializer},
        examples=[ex.response("An invoice", ex.INVOICE)],
        tags=["retail"],
    )
    def get(self, request, invoice_no: str):
        self.details_only()
        found = selectors.invoice_with_items(invoice_no)
        if found is None:
            raise NotFound(f"No invoice {invoice_no}.")
        return Response(invoice_body(Links(request), *found))


class InvoiceItemsView(RetailView):
    resources = {"get": (INVOICES, ITEMS), "post": (ITEMS,)}
    lookups = {"post": (INVOICES, STOCK_CODES, ITEMS)}

    @extend_schema(
        operation_id="retail_invoice_items_list",
        description="The invoice's items in line order, paginated. Needs `read` on "
        "retail_invoices and retail_invoice_items. Unknown invoice: 404.",
        parameters=[ex.INVOICE_NO, *ex.PAGE_PARAMETERS],
        responses={200: s.ItemSerializer(many=True), 404: ErrorSerializer},
        examples=[ex.response("Items", ex.page(ex.ITEM))],
        tags=["retail"],
    )
    def get(self, request, invoice_no: str):
        if selectors.invoice_get(invoice_no) is None:
            raise NotFound(f"No invoice {invoice_no}.")
        links = Links(request)
        return self.paginate(
            selectors.invoice_items(invoice_no),
            lambda row: item_body(links, invoice_no, row),
        )

    @extend_schema(
        operation_id="retail_invoice_items_create",
        description="Add an item (a new last line) to an invoice: a new version of "
        "retail_invoice_items (needs `write` on it, and an unrestricted `read` on "
        "retail_invoices, retail_stock_codes and retail_invoice_items, checked first: 403 "
        "before any 404); its description is the stock code's. "
        "201 with the item. 400: an unknown stock code, a quantity under 1, a negative "
        "price, or a cancelled invoice; unknown invoice: 404.",
        parameters=[ex.INVOICE_NO],
        request=s.ItemCreateSerializer,
        responses={201: s.ItemSerializer, **ERRORS},
        examples=[
            ex.request("An item", {"stock_code": "85123A", "quantity": 6, "unit_price": "2.55"}),
            ex.response(
                "Created",
                {
                    **ex.ITEM,
                    "line": 3,
                    "url": f"{ex.API}/invoices/600001/items/3/",
                    "invoice_url": f"{ex.API}/invoices/600001/",
                },
                "201",
            ),
        ],
        tags=["retail"],
    )
    def post(self, request, invoice_no: str):
        self.details_only()
        data = s.ItemCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.invoice_item_add(
            invoice_no=invoice_no, user=request.user, **data.validated_data
        )
        row = {k: row[k] for k in selectors.ITEM_FIELDS}
        body = item_body(Links(request), invoice_no, row)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class InvoiceItemDetailView(RetailView):
    resources = {"get": (INVOICES, ITEMS)}

    @extend_schema(
        operation_id="retail_invoice_items_retrieve",
        description="One item of an invoice. Needs `read` on retail_invoices and "
        "retail_invoice_items. Unknown invoice or line: 404.",
        parameters=[ex.INVOICE_NO, ex.LINE],
        responses={200: s.ItemSerializer, 404: ErrorSerializer},
        examples=[ex.response("An item", ex.ITEM)],
        tags=["retail"],
    )
    def get(self, request, invoice_no: str, line: str):
        self.details_only()
        number = int(line) if line.isdigit() and len(line) < 10 else None
        row = selectors.invoice_item_get(invoice_no, number) if number else None
        if row is None:
            raise NotFound(f"No line {line} on invoice {invoice_no}.")
        return Response(item_body(Links(request), invoice_no, row))


class StockCodeDetailView(RetailView):
    resources = {"get": (STOCK_CODES, ITEMS)}

    @extend_schema(
        operation_id="retail_stock_codes_retrieve",
        description="A stock code with its latest description and `invoices`, the number of "
        "invoices with an item of it. Needs `read` on retail_stock_codes and "
        "retail_invoice_items. Unknown: 404.",
        parameters=[ex.STOCK_CODE_PARAM],
        responses={200: s.StockCodeSerializer, 404: ErrorSerializer},
        examples=[ex.response("A stock code", ex.STOCK_CODE)],
        tags=["retail"],
    )
    def get(self, request, stock_code: str):
        self.details_only()
        row = selectors.stock_code_get(stock_code)
        if row is None:
            raise NotFound(f"No stock code {stock_code!r}.")
        return Response({**row, "url": Links(request).stock_code(stock_code)})
