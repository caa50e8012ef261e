"""The token page, for people: one's own API tokens, a new one (its key shown once), revoke.

Session-authenticated and CSRF-protected like any Django form; the API's token
endpoints (`/api/v1/auth/tokens/`) stay the way for programs.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.access import serves_no_data
from accounts.models import ApiToken
from accounts.services import token_issue
from datalake.sharing.profiles import share_profile


@serves_no_data("the caller's own API tokens: issue and revoke")
@never_cache  # the page may carry a clear key: no cache keeps a copy
@login_required
@require_http_methods(["GET", "POST"])
def tokens_page(request):
    new_token = new_key = None
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "create":
            new_token, new_key = token_issue(user=request.user)
        elif action == "revoke" and request.POST.get("token", "").isdigit():
            ApiToken.objects.filter(user=request.user, pk=int(request.POST["token"])).delete()
    context = {
        "tokens": ApiToken.objects.filter(user=request.user),
        "new_token": new_token,
        "new_key": new_key,
        "share_profile": share_profile(request, new_key, new_token.expires_at) if new_key else "",
    }
    return render(request, "portal/tokens.html", context)
