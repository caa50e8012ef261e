"""One admin for every run kind: the same columns and filters, read only (the API, the
admin's actions and beat start runs)."""

from __future__ import annotations

from django.contrib import admin

from datalake.runs.models import Run

RUN_COLUMNS = (
    "id", "label_column", "status", "requester", "created_at", "started_at", "finished_at",
    "attempts", "error_excerpt",
)  # fmt: skip


class RunAdmin(admin.ModelAdmin):
    """Subclass per kind; `extra_columns` adds the kind's own counts after the common ones."""

    extra_columns: tuple[str, ...] = ()
    extra_filters: tuple[str, ...] = ()
    date_hierarchy = "created_at"
    ordering = ("-id",)

    def get_list_display(self, request):
        return RUN_COLUMNS + tuple(self.extra_columns)

    def get_list_filter(self, request):
        return ("status", ("created_at", admin.DateFieldListFilter), *self.extra_filters)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + list(self.readonly_fields)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if self.has_requester():
            queryset = queryset.select_related("requested_by")
        return queryset

    def has_add_permission(self, request):
        return False

    def has_requester(self) -> bool:
        return any(f.name == "requested_by" for f in self.model._meta.fields)

    @admin.display(description="run")
    def label_column(self, obj: Run) -> str:
        return obj.label()

    @admin.display(description="requested by")
    def requester(self, obj: Run) -> str:
        user = getattr(obj, "requested_by", None) if self.has_requester() else None
        return user.get_username() if user else "-"

    @admin.display(description="error")
    def error_excerpt(self, obj: Run) -> str:
        text = (obj.error or "").strip().splitlines()
        first = text[0] if text else ""
        return first[:80] + ("…" if len(first) > 80 or len(text) > 1 else "")
