from django.urls import path

from people import views

urlpatterns = [
    path("people/", views.people_list, name="people_list"),
    path("people/bulk/tags/", views.people_bulk_tags, name="people_bulk_tags"),
    path("people/bulk/broadcast/", views.people_bulk_broadcast, name="people_bulk_broadcast"),
    path("people/export/", views.people_export, name="people_export"),
    path("people/attributes/", views.attribute_list, name="attribute_list"),
    path("people/<int:person_id>/", views.person_detail, name="person_detail"),
    path("people/<int:person_id>/tags/", views.person_tag_add, name="person_tag_add"),
    path(
        "people/<int:person_id>/tags/<int:tag_id>/remove/",
        views.person_tag_remove,
        name="person_tag_remove",
    ),
    path("people/<int:person_id>/dnc/", views.person_dnc_add, name="person_dnc_add"),
    path("tags/", views.tag_list, name="tag_list"),
    path("tags/<int:tag_id>/delete/", views.tag_delete, name="tag_delete"),
    path("dnc/", views.dnc_list, name="dnc_list"),
    path("dnc/import/", views.dnc_import, name="dnc_import"),
    path("dnc/<int:dnc_id>/remove/", views.dnc_remove, name="dnc_remove"),
]
