"""Pages of the portal outside the API: the home page leads to the catalog."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect

from accounts.access import serves_no_data


@serves_no_data("a redirect to the catalog")
@login_required
def home(request):
    """`/`: the resources list for a logged-in user; anyone else logs in first."""
    return redirect("/api/v1/resources/")
