from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api.views import ApiTokenViewSet, GrantViewSet, TokenView

router = SimpleRouter()
router.register("auth/tokens", ApiTokenViewSet, basename="token")
router.register("grants", GrantViewSet, basename="grant")

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    *router.urls,
]
