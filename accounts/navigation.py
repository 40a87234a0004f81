"""The sidebar: sections appear once they are built, and only for roles that may open them.

Each later app adds its section here (Dashboard, People, Tags, Segments, Audiences,
Channels, Campaigns, Flows, Settings, in that order).
"""

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

from accounts.models import Role, role_at_least


@dataclass(frozen=True)
class Section:
    label: str
    icon: str
    url_name: str
    minimum_role: str = Role.VIEWER


SECTIONS = [
    Section("Dashboard", "speedometer2", "dashboard"),
    Section("People", "people", "people_list"),
    Section("Tags", "tags", "tag_list"),
    Section("Do Not Contact", "slash-circle", "dnc_list"),
    Section("Segments", "diagram-3", "segment_list"),
    Section("Audiences", "collection", "audience_list"),
    Section("Channels", "broadcast", "channel_list"),
    Section("Campaigns", "send", "campaign_list"),
    Section("Flows", "signpost-split", "flow_list"),
    Section("Settings", "gear", "settings_workspace", Role.ADMIN),
]


def nav_for(*, role: str | None, path: str) -> list[dict]:
    items = []
    for section in SECTIONS:
        if role is None or not role_at_least(role, section.minimum_role):
            continue
        try:
            url = reverse(section.url_name)
        except NoReverseMatch:
            continue  # not built yet
        active = path == url if url == "/" else path.startswith(url)
        items.append({"label": section.label, "icon": section.icon, "url": url, "active": active})
    return items
