from django.urls import path
from rest_framework.routers import SimpleRouter

from metrics.api import views
from metrics.ml.views import MLModelViewSet, TrainingViewSet
from metrics.reports.views import ReportViewSet

router = SimpleRouter()
router.register("reports", ReportViewSet, basename="report")
router.register("ml/trainings", TrainingViewSet, basename="ml-training")
router.register("ml/models", MLModelViewSet, basename="ml-model")

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
    path(
        "reports/<int:pk>/result.csv",
        ReportViewSet.as_view({"get": "result_csv"}),
        name="report-result-csv",
    ),
    *router.urls,
]
