"""`manage.py create_api_user <username> [--staff] [--token] [--no-password]`."""

from __future__ import annotations

import getpass

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import services


class Command(BaseCommand):
    help = (
        "Create a user of the portal. The password is asked twice and checked by the "
        "password validators; --no-password makes a token-only user (needs --token). "
        "--token prints a new API token (shown once, valid API_TOKEN_TTL_DAYS). "
        "Privileges on resources are grants, given apart (admin or POST /api/v1/grants/)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--staff", action="store_true", help="May use the admin.")
        parser.add_argument("--token", action="store_true", help="Print a new API token.")
        parser.add_argument(
            "--no-password", action="store_true", help="No password: logs in by token only."
        )

    def handle(self, *args, username, staff, token, no_password, **options):
        if no_password and not token:
            raise CommandError("--no-password needs --token: the user could not log in.")
        try:
            services.user_new(username=username)  # before asking for a password
            password = None if no_password else self._ask_password()
            user = services.user_create(username=username, password=password, staff=staff)
        except ValidationError as exc:
            raise CommandError(" ".join(_messages(exc))) from exc
        self.stdout.write(f"user {user.username} created{' (staff)' if staff else ''}")
        if token:
            issued, key = services.token_issue(user=user)
            expiry = issued.expires_at.isoformat() if issued.expires_at else "never"
            self.stdout.write(f"expires {expiry}")
            self.stdout.write(f"token {key}")

    @staticmethod
    def _ask_password() -> str:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("The passwords do not match.")
        return password


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "message_dict"):
        return [f"{field}: {m}" for field, ms in exc.message_dict.items() for m in ms]
    return list(exc.messages)
