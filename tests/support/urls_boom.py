"""The project's URLs plus an API view that fails, to prove failed requests are logged."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from datalake.urls import urlpatterns as project_urlpatterns


class BoomView(APIView):
    def post(self, request):
        raise RuntimeError("boom")

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path("api/v1/boom/", BoomView.as_view()), *project_urlpatterns]
