"""The Delta Sharing profile file of a token (`lake.share`)."""

from __future__ import annotations

import json

from django.urls import reverse


def profile(request, key: str, expires_at) -> dict:
    """The profile of `key` for the server this request reached."""
    endpoint = request.build_absolute_uri(reverse("sharing-shares")).removesuffix("/shares")
    return profile_at(endpoint, key, expires_at)


def profile_at(endpoint: str, key: str, expires_at=None) -> dict:
    """`shareCredentialsVersion`, the server's `endpoint`, the token as `bearerToken`
    and its `expirationTime` when it expires."""
    found = {"shareCredentialsVersion": 1, "endpoint": endpoint, "bearerToken": key}
    if expires_at is not None:
        found["expirationTime"] = expires_at.isoformat().replace("+00:00", "Z")
    return found


def share_profile(request, key: str, expires_at) -> str:
    """The profile as the file's text."""
    return json.dumps(profile(request, key, expires_at), indent=2)
