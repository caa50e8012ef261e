"""The registry of report types: adding a report is adding one class here (no URL changes)."""

from metrics.reports.base import REGISTRY, ReportType, get_report_type
from metrics.reports.builtin import RatingsPerCategory, SpendPerCountry, TopProducts

__all__ = [
    "REGISTRY",
    "RatingsPerCategory",
    "ReportType",
    "SpendPerCountry",
    "TopProducts",
    "get_report_type",
]
