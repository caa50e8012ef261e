"""The two reference points of the rows benchmark, served only under `benchsite.settings`.

- `CeilingView`: a bare DRF `APIView` answering 10 fixed transaction-shaped rows in
  the rows endpoint's envelope. Same authentication and permission classes as the
  product (the project defaults: hashed token auth, IsAuthenticated), same renderer,
  same middleware: what the stack costs before any query is made.
- `NaiveListView`: what a DRF user writes first for the same query: `ListAPIView`,
  a `ModelSerializer` over `Transaction`, the ORM filter, `PageNumberPagination`
  with its exact `count`.
"""

from __future__ import annotations

from pathlib import Path

from django.http import JsonResponse
from rest_framework import generics, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from datalake.models import Transaction

# The projection every scenario of the benchmark asks for (`fields=` of the rows endpoint).
FIELDS = ["transaction_id", "timestamp", "country", "amount", "status", "payment_method"]

FIXED_ROWS = [
    {
        "transaction_id": f"TX-{n:08d}",
        "timestamp": f"2026-01-01T00:{n:02d}:00Z",
        "country": "FR",
        "amount": f"{100 + n}.50",
        "status": "completed",
        "payment_method": "card",
    }
    for n in range(1, 11)
]


class CeilingView(APIView):
    """10 fixed rows: the stack's cost (auth, middleware, rendering), no query of data."""

    def get(self, request):
        return Response(
            {
                "count": 10,
                "count_is_estimate": False,
                "next": None,
                "previous": None,
                "next_cursor": None,
                "results": FIXED_ROWS,
            }
        )


class NaiveTransactionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Transaction
        fields = FIELDS


class NaivePagination(PageNumberPagination):
    page_size = 10


class NaiveListView(generics.ListAPIView):
    """The naive peer: current FR rows over 100, in key order, exact count, ModelSerializer."""

    serializer_class = NaiveTransactionSerializer
    pagination_class = NaivePagination
    filter_backends = []
    queryset = Transaction.objects.filter(
        valid_to__isnull=True, country="FR", amount__gt=100
    ).order_by("transaction_id")


def served_tree(request):
    """Which checkout this server runs (the A/B mode checks it is the tree it started)."""
    import datalake

    return JsonResponse({"root": str(Path(datalake.__file__).resolve().parents[1])})
