from django.urls import path
from rest_framework.routers import SimpleRouter

from lineage.api.views import AuditVerifyView, RequestLogViewSet

router = SimpleRouter()
router.register("audit/requests", RequestLogViewSet, basename="audit-request")

urlpatterns = [
    path("audit/verify/", AuditVerifyView.as_view(), name="audit-verify"),
    *router.urls,
]
