from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and grants"

    def ready(self):
        from auditlog.registry import auditlog
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from accounts.models import Grant
        from datalake.models import Resource

        # Who changed what, before and after: visible in the admin's log entries.
        auditlog.register(Grant)
        auditlog.register(get_user_model(), exclude_fields=["password", "last_login"])
        auditlog.register(Group, m2m_fields={"permissions"})
        auditlog.register(Resource)
