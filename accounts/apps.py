from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and grants"

    def ready(self):
        from auditlog.registry import auditlog
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from accounts.models import Grant, Quota
        from accounts.quotas import limits
        from datalake.models import Resource

        # Cached limits are stale when a quota or a user's groups change.
        post_save.connect(limits.changed, sender=Quota, dispatch_uid="quota-saved")
        post_delete.connect(limits.changed, sender=Quota, dispatch_uid="quota-deleted")
        m2m_changed.connect(
            limits.changed, sender=get_user_model().groups.through, dispatch_uid="quota-groups"
        )

        # Who changed what, before and after: visible in the admin's log entries.
        auditlog.register(Grant)
        auditlog.register(Quota)
        auditlog.register(get_user_model(), exclude_fields=["password", "last_login"])
        auditlog.register(Group, m2m_fields={"permissions"})
        auditlog.register(Resource)
