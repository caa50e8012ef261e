"""Models of the lake: the catalog's resources and the lake's own tables."""

from datalake.models.catalog import DataStamp, Resource, ResourceKind
from datalake.models.followers import FollowerPosition, SearchLine
from datalake.models.lake import (
    ExchangeRate,
    ProductDailySales,
    RetailCustomer,
    RetailInvoice,
    RetailInvoiceItem,
    RetailStockCode,
    Sale,
    Transaction,
)
from datalake.models.search import SearchEntry

__all__ = [
    "DataStamp",
    "ExchangeRate",
    "FollowerPosition",
    "ProductDailySales",
    "Resource",
    "ResourceKind",
    "RetailCustomer",
    "RetailInvoice",
    "RetailInvoiceItem",
    "RetailStockCode",
    "Sale",
    "SearchEntry",
    "SearchLine",
    "Transaction",
]
