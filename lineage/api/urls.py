from rest_framework.routers import SimpleRouter

from lineage.api.views import RequestLogViewSet

router = SimpleRouter()
router.register("audit/requests", RequestLogViewSet, basename="audit-request")

urlpatterns = router.urls
