from django.urls import path
from rest_framework.routers import SimpleRouter

from ingestion.api.pipeline import RepushAllView, RepushDetailView, RepushJobView, RepushView
from ingestion.api.views import IngestionRunViewSet

router = SimpleRouter()
router.register("ingestion/runs", IngestionRunViewSet, basename="ingestion-run")

urlpatterns = [
    *router.urls,
    path("pipeline/repush/", RepushView.as_view(), name="pipeline-repush"),
    path("pipeline/repush/<int:pk>/", RepushDetailView.as_view(), name="pipeline-repush-detail"),
    path("pipeline/repush-all/", RepushAllView.as_view(), name="pipeline-repush-all"),
    path("pipeline/jobs/<int:pk>/", RepushJobView.as_view(), name="pipeline-job-detail"),
]
