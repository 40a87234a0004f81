from django.urls import path

from segments import views

urlpatterns = [
    path("segments/", views.segment_list, name="segment_list"),
    path("segments/new/", views.segment_new, name="segment_new"),
    path("segments/preview/", views.segment_preview, name="segment_preview"),
    path("segments/static-options/", views.static_segment_options, name="static_segment_options"),
    path("segments/<int:segment_id>/", views.segment_detail, name="segment_detail"),
    path("segments/<int:segment_id>/edit/", views.segment_edit, name="segment_edit"),
    path("segments/<int:segment_id>/duplicate/", views.segment_duplicate, name="segment_duplicate"),
    path("segments/<int:segment_id>/refresh/", views.segment_refresh, name="segment_refresh"),
    path(
        "segments/<int:segment_id>/refresh/status/",
        views.segment_refresh_status,
        name="segment_refresh_status",
    ),
    path("segments/<int:segment_id>/delete/", views.segment_delete, name="segment_delete"),
    path(
        "segments/<int:segment_id>/to-audience/",
        views.segment_to_audience,
        name="segment_to_audience",
    ),
    path(
        "segments/<int:segment_id>/members/remove/",
        views.segment_members_remove,
        name="segment_members_remove",
    ),
    path("people/bulk/segment/", views.people_bulk_segment, name="people_bulk_segment"),
]
