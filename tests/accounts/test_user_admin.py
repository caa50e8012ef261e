"""An administrator creates users from the command line; the demo's tokens are standard."""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken


def works(key: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/resources/").status_code == 200


def token_in(output: str) -> str:
    return next(line.split()[-1] for line in output.splitlines() if line.startswith("token"))


@pytest.mark.django_db
def test_create_api_user_with_a_token_and_no_password(settings):
    out = io.StringIO()
    call_command("create_api_user", "carol", "--token", "--no-password", stdout=out)
    carol = User.objects.get(username="carol")
    assert not carol.is_staff and not carol.has_usable_password()
    key = token_in(out.getvalue())
    assert works(key)
    expires = ApiToken.objects.get(user=carol).expires_at
    assert expires - timezone.now() > dt.timedelta(days=settings.API_TOKEN_TTL_DAYS - 1)


@pytest.mark.django_db
def test_create_api_user_staff_with_a_prompted_password(monkeypatch):
    answers = iter(["plover-quartz-1887", "plover-quartz-1887"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    call_command("create_api_user", "dave", "--staff", stdout=io.StringIO())
    dave = User.objects.get(username="dave")
    assert dave.is_staff and not dave.is_superuser and dave.check_password("plover-quartz-1887")
    assert not ApiToken.objects.filter(user=dave).exists()
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "dave", "password": "plover-quartz-1887"}
    )
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "answers", "message"),
    [
        (["erin"], ["password123", "password123"], "too common"),
        (["erin"], ["plover-quartz-1887", "other-quartz-1887"], "do not match"),
        (["erin", "--no-password"], [], "--token"),
        (["alice"], [], "already exists"),
        (["bad name!"], [], "username"),
    ],
)
def test_create_api_user_refuses(alice, monkeypatch, args, answers, message):
    replies = iter(answers)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(replies))
    with pytest.raises(CommandError, match=message):
        call_command("create_api_user", *args, stdout=io.StringIO())
    assert not User.objects.filter(username="erin").exists()


def demo_setup():
    path = Path(__file__).resolve().parents[2] / "scripts" / "demo_setup.py"
    spec = importlib.util.spec_from_file_location("demo_setup", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.django_db
def test_each_demo_setup_revokes_the_demo_accounts_old_tokens(settings):
    module = demo_setup()
    _user, first = module.ensure_user("analyst", False)
    _user, second = module.ensure_user("analyst", False)
    assert works(second) and not works(first)
    token = ApiToken.objects.get(user__username="analyst")
    assert token.expires_at is not None
    assert token.expires_at - timezone.now() > dt.timedelta(days=settings.API_TOKEN_TTL_DAYS - 1)
