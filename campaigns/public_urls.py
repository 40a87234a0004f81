"""Public campaign URLs without login: unsubscribe (/u/), tracking (/t/)."""

from django.urls import path

from campaigns import public_views

urlpatterns = [
    # shared/API.md: GET shows the page, POST unsubscribes (RFC 8058 one-click)
    path("u/<str:token>", public_views.unsubscribe, name="unsubscribe"),
    # shared/API.md: the open pixel (also the push open an app reports) and tracked links
    path("t/o/<str:token>.gif", public_views.track_open, name="track-open"),
    path("t/c/<str:token>", public_views.track_click, name="track-click"),
]
