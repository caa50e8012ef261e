from django.urls import path
from rest_framework.routers import SimpleRouter

from .search import SearchView
from .views import ResourceViewSet

router = SimpleRouter()
router.register("resources", ResourceViewSet, basename="resource")

urlpatterns = [path("search/", SearchView.as_view(), name="search"), *router.urls]
