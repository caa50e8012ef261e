"""URLs: the API under /api/v1/, its docs, the admin, the browsable API's login, /healthz,
/metrics (Prometheus)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts.pages import tokens_page
from datalake.api.root import ApiRootView
from datalake.pages import home
from datalake.platform.health import healthz
from datalake.platform.prometheus import metrics_view
from metrics.reports.pages import report_page

api_v1 = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("", include("accounts.api.urls")),
    path("", include("datalake.api.urls")),
    path("", include("datalake.retail.urls")),
    path("", include("lineage.api.urls")),
    path("", include("ingestion.api.urls")),
    path("", include("metrics.api.urls")),
    path("", include("datalake.sharing.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api-auth/", include("rest_framework.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="prometheus-metrics"),  # outside /api/: not a data API
    path("reports/<int:pk>/", report_page, name="report-page"),
    path("portal/tokens/", tokens_page, name="portal-tokens"),
    path("", home, name="portal-home"),
]

handler404 = "datalake.api.errors.not_found"
handler500 = "datalake.api.errors.server_error"
