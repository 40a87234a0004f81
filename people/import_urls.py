"""URLs of the contact import (upload -> analyze -> confirm -> progress)."""

from django.urls import path

from people import import_views

urlpatterns = [
    path("", import_views.contact_import_new, name="contact_import_new"),
    path("<int:import_id>/", import_views.contact_import_detail, name="contact_import_detail"),
    path(
        "<int:import_id>/progress/",
        import_views.contact_import_progress,
        name="contact_import_progress",
    ),
    path(
        "<int:import_id>/errors.csv",
        import_views.contact_import_errors,
        name="contact_import_errors",
    ),
]
