"""Public campaign URLs without login: unsubscribe (/u/), tracking (/t/)."""

from django.urls import path

from campaigns import public_views

urlpatterns = [
    # shared/API.md: GET shows the page, POST unsubscribes (RFC 8058 one-click)
    path("u/<str:token>", public_views.unsubscribe, name="unsubscribe"),
]
