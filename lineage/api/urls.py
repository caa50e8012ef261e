from rest_framework.routers import SimpleRouter

from .views import RequestLogViewSet

router = SimpleRouter()
router.register("audit/requests", RequestLogViewSet, basename="audit-request")

urlpatterns = router.urls
