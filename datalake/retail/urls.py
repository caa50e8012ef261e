from django.urls import path

from datalake.retail import views

urlpatterns = [
    path("customers/", views.CustomerListView.as_view(), name="retail-customer-list"),
    path(
        "customers/<str:customer_id>/",
        views.CustomerDetailView.as_view(),
        name="retail-customer-detail",
    ),
    path(
        "customers/<str:customer_id>/invoices/",
        views.CustomerInvoicesView.as_view(),
        name="retail-customer-invoices",
    ),
    path(
        "invoices/<str:invoice_no>/",
        views.InvoiceDetailView.as_view(),
        name="retail-invoice-detail",
    ),
    path(
        "invoices/<str:invoice_no>/items/",
        views.InvoiceItemsView.as_view(),
        name="retail-invoice-items",
    ),
    path(
        "invoices/<str:invoice_no>/items/<str:line>/",
        views.InvoiceItemDetailView.as_view(),
        name="retail-invoice-item-detail",
    ),
    path(
        "stock-codes/<str:stock_code>/",
        views.StockCodeDetailView.as_view(),
        name="retail-stock-code-detail",
    ),
]
