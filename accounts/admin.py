"""Admin for grants, tokens and quotas: usable without reading code."""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.utils import timezone

from accounts.models import ApiToken, Grant, Quota
from datalake.admin import RankedSearchMixin

# The grant form's user and group autocompletes rank the exact name first, as resources do.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class RankedUserAdmin(RankedSearchMixin, UserAdmin):
    rank_field = "username"


@admin.register(Group)
class RankedGroupAdmin(RankedSearchMixin, GroupAdmin):
    rank_field = "name"


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    list_display = (
        "resource",
        "privilege",
        "user",
        "group",
        "granted_by",
        "created_at",
        "expires_at",
        "live",
    )
    list_filter = ("privilege", "resource", "group", "granted_by")
    search_fields = ("user__username", "group__name", "resource__name", "granted_by__username")
    autocomplete_fields = ("user", "group", "resource")
    readonly_fields = ("granted_by", "created_at")
    date_hierarchy = "created_at"

    @admin.display(boolean=True, description="live")
    def live(self, obj):
        return obj.is_live

    def get_queryset(self, request):
        """The grants the admin user may see, by the access layer's rule (staff: all)."""
        return super().get_queryset(request).readable_by(request.user)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.granted_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued through the API (the key is shown once); here they are revoked."""

    list_display = ("prefix", "user", "created_at", "expires_at", "last_used_at", "live")
    list_filter = ("created_at",)
    search_fields = ("user__username", "prefix")
    readonly_fields = ("user", "prefix", "created_at", "last_used_at")
    actions = ["expire_now"]

    def has_add_permission(self, request):
        return False

    @admin.display(boolean=True, description="live")
    def live(self, obj):
        return obj.is_live

    @admin.action(description="Revoke the selected tokens now")
    def expire_now(self, request, queryset):
        queryset.update(expires_at=timezone.now())


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    """A user's or a group's limits (accounts/quotas/); effective from the next request."""

    list_display = ("user", "group", "requests_per_minute", "rows_per_day")
    search_fields = ("user__username", "group__name")
    autocomplete_fields = ("user", "group")
