"""`GET /api/v1/`: the entry point of the browsable API."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from accounts.access import serves_no_data


@serves_no_data("the links to the endpoints")
class ApiRootView(APIView):
    """Links to the catalog, the token endpoint and the docs."""

    @extend_schema(
        description="Links to the API's main collections and its documentation.",
        responses={200: dict},
        examples=[
            OpenApiExample(
                "Links",
                value={"resources": "http://localhost:8000/api/v1/resources/"},
                response_only=True,
            )
        ],
        tags=["catalog"],
    )
    def get(self, request):
        links = {
            "resources": "resource-list",
            "customers": "retail-customer-list",
            "token": "auth-token",
            "schema": "schema",
            "docs": "swagger-ui",
            "redoc": "redoc",
        }
        return Response({k: reverse(v, request=request) for k, v in links.items()})
