"""Models of the lake: the catalog's resources and the lake's own tables."""

from .catalog import Resource, ResourceKind
from .lake import (
    ExchangeRate,
    ProductDailySales,
    RetailCustomer,
    RetailInvoice,
    RetailInvoiceItem,
    RetailStockCode,
    Sale,
    Transaction,
)
from .search import SearchEntry

__all__ = [
    "ExchangeRate",
    "ProductDailySales",
    "Resource",
    "ResourceKind",
    "RetailCustomer",
    "RetailInvoice",
    "RetailInvoiceItem",
    "RetailStockCode",
    "Sale",
    "SearchEntry",
    "Transaction",
]
