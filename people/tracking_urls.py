"""/v1/: the Segment HTTP tracking API (people.tracking), with analytics.js's short aliases."""

from django.urls import path

from people.tracking import tracking_endpoint

KINDS = {"identify": "i", "track": "t", "page": "p", "screen": "s", "batch": "b"}

urlpatterns = [
    route
    for kind, alias in KINDS.items()
    for route in (
        path(kind, tracking_endpoint, {"kind": kind}, name=f"tracking_{kind}"),
        path(alias, tracking_endpoint, {"kind": kind}),
    )
]
