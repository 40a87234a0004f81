from django.urls import path

from channels import views


def _provider_paths():
    """A page per provider account, /channels/<channel>/provider/ (push per platform:
    /channels/push/provider/<platform>/), written out per account: the channel and the
    platform name no object, so they are no URL parameters. Reversed by their kwargs:
    reverse("channel_provider", kwargs={"channel": "push", "platform": "ios"})."""
    for channel, platforms in views.PROVIDER_SLOTS.items():
        for platform in platforms:
            page = f"channels/{channel}/provider/" + (f"{platform}/" if platform else "")
            kwargs = {"channel": channel, "platform": platform}
            yield path(page, views.provider_page, kwargs, name="channel_provider")
            yield path(
                f"{page}test/", views.provider_send_test, kwargs, name="channel_provider_test"
            )


urlpatterns = [
    path("channels/", views.channel_list, name="channel_list"),
    *_provider_paths(),
    path("channels/sandbox/", views.sandbox_inbox, name="sandbox_inbox"),
    path("channels/sandbox/<int:message_id>/", views.sandbox_message, name="sandbox_message"),
    path(
        "channels/sandbox/<int:message_id>/html/",
        views.sandbox_message_html,
        name="sandbox_message_html",
    ),
]
