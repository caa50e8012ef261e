from django.urls import path

from . import views

urlpatterns = [
    path(
        "metrics/spent-last-minutes/",
        views.SpentLastMinutesView.as_view(),
        name="metrics-spent-last-minutes",
    ),
    path(
        "metrics/spent-per-user-type/",
        views.SpentPerUserTypeView.as_view(),
        name="metrics-spent-per-user-type",
    ),
    path("metrics/top-products/", views.TopProductsView.as_view(), name="metrics-top-products"),
    path(
        "metrics/products/<str:product_id>/sales/",
        views.ProductSalesView.as_view(),
        name="metrics-product-sales",
    ),
]
