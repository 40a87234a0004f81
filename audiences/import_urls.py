"""URLs of the audience CSV import (Audiences -> Import audiences), under /audiences/import/."""

from django.urls import path

from audiences import import_views

urlpatterns = [
    path("", import_views.audience_import_new, name="audience_import_new"),
    path(
        "<int:audience_import_id>/",
        import_views.audience_import_detail,
        name="audience_import_detail",
    ),
    path(
        "<int:audience_import_id>/progress/",
        import_views.audience_import_progress,
        name="audience_import_progress",
    ),
    path(
        "<int:audience_import_id>/report/",
        import_views.audience_import_report,
        name="audience_import_report",
    ),
    path(
        "<int:audience_import_id>/import/",
        import_views.audience_import_confirm,
        name="audience_import_confirm",
    ),
]
