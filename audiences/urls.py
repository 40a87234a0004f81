from django.urls import path

from audiences import views

urlpatterns = [
    path("audiences/", views.audience_list, name="audience_list"),
    path("audiences/<int:audience_id>/", views.audience_detail, name="audience_detail"),
    path("audiences/<int:audience_id>/export/", views.audience_export, name="audience_export"),
    path("audiences/<int:audience_id>/rename/", views.audience_rename, name="audience_rename"),
    path("audiences/<int:audience_id>/delete/", views.audience_delete, name="audience_delete"),
    path("people/bulk/audience/", views.people_bulk_audience, name="people_bulk_audience"),
]
