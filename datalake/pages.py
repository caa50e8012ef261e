"""Pages of the portal outside the API: the home page leads to the catalog."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect


@login_required
def home(request):
    """`/`: the resources list for a logged-in user; anyone else logs in first."""
    return redirect("/api/v1/resources/")
