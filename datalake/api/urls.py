from django.urls import path
from rest_framework.routers import SimpleRouter

from datalake.api.views import ResourceViewSet
from datalake.search.views import SearchView

router = SimpleRouter()
router.register("resources", ResourceViewSet, basename="resource")

urlpatterns = [path("search/", SearchView.as_view(), name="search"), *router.urls]
