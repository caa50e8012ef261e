from rest_framework.routers import SimpleRouter

from .views import IngestionRunViewSet

router = SimpleRouter()
router.register("ingestion/runs", IngestionRunViewSet, basename="ingestion-run")

urlpatterns = router.urls
