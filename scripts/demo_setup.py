"""Prepare the demo: schema, an admin and an analyst with tokens, demo files in the lake.

Idempotent; prints the credentials and tokens to use.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datalake.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command, get_commands  # noqa: E402

from accounts.services import token_reissue  # noqa: E402
from datalake.catalog.sync import sync_resources  # noqa: E402
from datalake.models import Resource  # noqa: E402
from datalake.sharing.profiles import profile_at  # noqa: E402

DEMO_USERS = {"admin": True, "analyst": False}


def ensure_user(username: str, staff: bool) -> tuple[User, str]:
    """The demo user, with a new standard token (API_TOKEN_TTL_DAYS); the tokens of the
    previous runs are revoked, so only the key printed last works (only hashes are
    stored: an old key cannot be printed again)."""
    user, created = User.objects.get_or_create(
        username=username, defaults={"is_staff": staff, "is_superuser": staff}
    )
    if created:
        user.set_password(f"{username}-demo-pw")
        user.save()
    return user, token_reissue(user=user)[1]


def grant_analyst(analyst: User, admin: User) -> None:
    """The analyst reads every resource and may re-push/ingest transactions."""
    from accounts.services import grant_give

    for resource in Resource.objects.all():
        grant_give(by=admin, resource=resource, privilege="read", user=analyst)
    grant_give(
        by=admin,
        resource=Resource.objects.get(name="transactions"),
        privilege="write",
        user=analyst,
    )


def main() -> None:
    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    users = {name: ensure_user(name, staff) for name, staff in DEMO_USERS.items()}
    tokens = {name: key for name, (_user, key) in users.items()}
    landing = Path(settings.LAKE_ROOT) / "landing"
    if "generate_sample_data" in get_commands():
        call_command("generate_sample_data", out=str(landing))
    sync_resources()
    grant_analyst(users["analyst"][0], users["admin"][0])
    # Queue the ingestion of every demo file (rates first, days in order); the worker
    # started next runs them through Spark while the portal is already browsable.
    call_command("ingest_landing")
    print(f"\nLake: {settings.LAKE_ROOT}")
    for name, key in tokens.items():
        print(f"  user {name!r} password {name + '-demo-pw'!r} token {key}")
    header = f"Authorization: Token {tokens['analyst']}"
    print(f"  try: curl -H '{header}' http://127.0.0.1:8000/api/v1/resources/")
    # The analyst's Delta Sharing profile (docs/SHARING.md): whole tables to pandas.
    profile = ROOT / "run" / "lake.share"
    profile.parent.mkdir(exist_ok=True)
    port = os.environ.get("PORT", "8000")
    endpoint = f"http://127.0.0.1:{port}/api/v1/delta-sharing"
    profile.write_text(json.dumps(profile_at(endpoint, tokens["analyst"]), indent=2))
    profile.chmod(0o600)
    print(f"  share: {profile} (the analyst's profile), then in Python: import delta_sharing;")
    print(f"         delta_sharing.load_as_pandas('{profile}#lake.tables.transactions')")


if __name__ == "__main__":
    main()
