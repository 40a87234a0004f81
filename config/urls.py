from django.contrib import admin
from django.urls import include, path

from config.api_urls import api, ofrep_api

admin.site.site_header = "Herald administration"
admin.site.site_title = "Herald admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("ofrep/v1/", ofrep_api.urls),
    path("v1/", include("people.tracking_urls")),
    path("hooks/", include("channels.hook_urls")),
    path("", include("campaigns.public_urls")),
    path("people/import/", include("people.import_urls")),
    path("", include("people.urls")),
    path("audiences/import/", include("audiences.import_urls")),
    path("", include("audiences.urls")),
    path("", include("segments.urls")),
    path("", include("channels.urls")),
    path("", include("channels.list_urls")),
    path("", include("campaigns.urls")),
    path("", include("accounts.urls")),
]

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
