from django.contrib import admin

from .models import Resource


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "versioning", "current_version", "created_at")
    list_filter = ("kind", "versioning")
    search_fields = ("name", "description")  # used by the grant admin autocomplete
    readonly_fields = ("created_at",)
