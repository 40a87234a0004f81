"""/hooks/: providers calling back (channels.webhooks)."""

from django.urls import path

from channels import webhooks

urlpatterns = [
    *(
        path(
            f"email/<str:hook_id>/{direction}/",
            webhooks.esp_webhook,
            {"direction": direction},
            name=f"esp_{direction}",
        )
        for direction in ("tracking", "inbound")
    ),  # fmt: skip
    path("twilio/status/<str:hook_id>/", webhooks.twilio_status, name="twilio_status"),
    path("twilio/inbound/<str:hook_id>/", webhooks.twilio_inbound, name="twilio_inbound"),
]
