from django.urls import path
from rest_framework.routers import SimpleRouter

from datalake.api.search import SearchView
from datalake.api.views import ResourceViewSet

router = SimpleRouter()
router.register("resources", ResourceViewSet, basename="resource")

urlpatterns = [path("search/", SearchView.as_view(), name="search"), *router.urls]
