from django.contrib import admin

from datalake.runs.admin import RunAdmin
from metrics.models import Report, Training


@admin.register(Report)
class ReportAdmin(RunAdmin):
    """Reports (the API says `running`, `completed`, `error`); read only."""

    extra_columns = ("row_count",)
    search_fields = ("report_name",)


@admin.register(Training)
class TrainingAdmin(RunAdmin):
    """Trainings and the version each published; read only."""

    extra_columns = ("model_version",)
    search_fields = ("model_name",)
