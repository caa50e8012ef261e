from django.contrib import admin
from django.db.models import Case, IntegerField, Value, When
from django.db.models.functions import Lower

from datalake.models import Resource


class RankedSearchMixin:
    """Search results ranked by how well `rank_field` matches the term: the exact value
    first, then values starting with it, then the rest (each group by `rank_field`).

    The admin's autocomplete lists results in this order, and an administrator picks the
    first suggestion: `transactions` must come before `raw_transactions` (issue 17).
    Matching ignores case, as the admin's own `icontains` search does.
    """

    rank_field = "name"

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lower()
        if not term:
            return queryset, may_have_duplicates
        lowered = Lower(self.rank_field)
        rank = Case(
            When(**{f"{self.rank_field}__iexact": term}, then=Value(0)),
            When(**{f"{self.rank_field}__istartswith": term}, then=Value(1)),
            default=Value(2),
            output_field=IntegerField(),
        )
        ranked = queryset.annotate(_search_rank=rank, _search_name=lowered)
        return ranked.order_by("_search_rank", "_search_name", "pk"), may_have_duplicates


@admin.register(Resource)
class ResourceAdmin(RankedSearchMixin, admin.ModelAdmin):
    list_display = ("name", "kind", "versioning", "current_version", "created_at")
    list_filter = ("kind", "versioning")
    search_fields = ("name", "description")  # used by the grant admin autocomplete
    readonly_fields = ("created_at",)
