"""The Segments and Audiences tabs of each channel (channels.list_views).

A page of a whole channel (its list, its audiences, "Sync now"...) is written out per
channel, /channels/email/segments/, /channels/sms/segments/...: the channel names no
object of the workspace, so it is no URL parameter (like the provider pages of
channels/urls.py). A page of one object names the channel it belongs to,
/channels/<channel>/segments/<entry_id>/, and answers 404 for another channel's, another
workspace's, or an unknown channel. Reversed with the channel as a kwarg either way:
reverse("channel_segments", kwargs={"channel": "sms"})."""

from django.urls import path

from channels import list_views as views
from channels.models import AUDIENCE_CHANNELS

# (path under channels/<channel>/, view, name) of the pages of a whole channel
CHANNEL_PAGES = (
    ("segments/", views.channel_segments, "channel_segments"),
    ("segments/add/", views.channel_segment_add, "channel_segment_add"),
    ("segments/upload/", views.channel_segment_upload, "channel_segment_upload"),
    ("source/", views.channel_source, "channel_source"),
    ("sync/", views.channel_sync_start, "channel_sync_start"),
    ("audiences/", views.channel_audiences, "channel_audiences"),
    ("audiences/new/", views.channel_audience_new, "channel_audience_new"),
)


def _channel_paths():
    for channel in AUDIENCE_CHANNELS:
        for page, view, name in CHANNEL_PAGES:
            yield path(f"channels/{channel}/{page}", view, {"channel": channel}, name=name)


ENTRY = "channels/<channel>/segments/<int:entry_id>/"
AUDIENCE = "channels/<channel>/audiences/<int:channel_audience_id>/"

urlpatterns = [
    *_channel_paths(),
    path(ENTRY, views.channel_segment_edit, name="channel_segment_edit"),
    path(f"{ENTRY}active/", views.channel_segment_active, name="channel_segment_active"),
    path(f"{ENTRY}delete/", views.channel_segment_delete, name="channel_segment_delete"),
    path(
        "channels/<channel>/syncs/<int:sync_id>/",
        views.channel_sync_detail,
        name="channel_sync_detail",
    ),
    path(AUDIENCE, views.channel_audience_detail, name="channel_audience_detail"),
    path(f"{AUDIENCE}count/", views.channel_audience_count, name="channel_audience_count"),
    path(f"{AUDIENCE}edit/", views.channel_audience_edit, name="channel_audience_edit"),
    path(f"{AUDIENCE}clone/", views.channel_audience_clone, name="channel_audience_clone"),
    path(f"{AUDIENCE}delete/", views.channel_audience_delete, name="channel_audience_delete"),
    path(f"{AUDIENCE}meta/", views.channel_audience_meta, name="channel_audience_meta"),
    path(
        "channels/meta/exports/<int:export_id>/",
        views.meta_export_detail,
        name="meta_export_detail",
    ),
]
