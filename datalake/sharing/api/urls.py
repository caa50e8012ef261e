"""The Delta Sharing endpoint: a profile's `endpoint` is `<host>/api/v1/delta-sharing`."""

from django.urls import path

from datalake.sharing.api import views

TABLE = "shares/<str:share>/schemas/<str:schema>/tables/<str:table>"

urlpatterns = [
    path("delta-sharing/profile/", views.ProfileView.as_view(), name="sharing-profile"),
    path("delta-sharing/shares", views.SharesView.as_view(), name="sharing-shares"),
    path("delta-sharing/shares/<str:share>", views.ShareView.as_view(), name="sharing-share"),
    path(
        "delta-sharing/shares/<str:share>/schemas",
        views.SchemasView.as_view(),
        name="sharing-schemas",
    ),
    path(
        "delta-sharing/shares/<str:share>/schemas/<str:schema>/tables",
        views.TablesView.as_view(),
        name="sharing-tables",
    ),
    path(
        "delta-sharing/shares/<str:share>/all-tables",
        views.AllTablesView.as_view(),
        name="sharing-all-tables",
    ),
    path(
        f"delta-sharing/{TABLE}/version",
        views.TableVersionView.as_view(),
        name="sharing-table-version",
    ),
    path(
        f"delta-sharing/{TABLE}/metadata",
        views.TableMetadataView.as_view(),
        name="sharing-table-metadata",
    ),
    path(
        f"delta-sharing/{TABLE}/query", views.TableQueryView.as_view(), name="sharing-table-query"
    ),
    path(
        f"delta-sharing/{TABLE}/changes",
        views.TableChangesView.as_view(),
        name="sharing-table-changes",
    ),
    path("delta-sharing/files/<str:token>", views.SharedFileView.as_view(), name="sharing-file"),
]
