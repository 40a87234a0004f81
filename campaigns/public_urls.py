"""Public campaign URLs without login: unsubscribe (/u/), tracking (/t/), the banner API
(/public/v1/, a publishable key)."""

from django.urls import path

from campaigns import banner_views, public_views

urlpatterns = [
    # shared/API.md: GET shows the page, POST unsubscribes (RFC 8058 one-click)
    path("u/<str:token>", public_views.unsubscribe, name="unsubscribe"),
    # shared/API.md: the open pixel (also the push open an app reports) and tracked links
    path("t/o/<str:token>.gif", public_views.track_open, name="track-open"),
    path("t/c/<str:token>", public_views.track_click, name="track-click"),
    path("public/v1/banners", banner_views.banners_get, name="public-banners"),
    path("public/v1/banners/events", banner_views.banner_events, name="public-banner-events"),
]
