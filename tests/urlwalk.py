"""Every URL pattern of the project, read from the URL conf, and a way to fill its kwargs
with objects of a given workspace.

When a later feature adds a URL with a new kwarg name, register how to make one such
object in OBJECT_MAKERS; the isolation and permission tests fail until it is there, so
no URL escapes them.
"""

import re
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

from accounts.audit import Actor
from accounts.services import api_key_create
from audiences.models import TargetAudience
from people.models import ContactImport, Tag
from people.services.dnc import dnc_add
from segments.models import Segment
from tests.audiences.makers import finished_dry_run
from tests.factories import MembershipFactory, PersonFactory


def _dnc_entry(ws):
    entry, _ = dnc_add(
        workspace=ws,
        channel="email",
        address=f"blocked-{ws.slug}@example.test",
        actor=Actor(system="tests"),
    )
    return {"channel": entry.channel, "address": entry.address}


def _provider(ws, channel="email", platform=""):
    from channels.services import provider_set  # the app chain: tests may reach any app

    provider_set(workspace=ws, channel=channel, platform=platform, kind="sandbox", settings={},
                 secrets={}, actor=Actor(system="tests"))  # fmt: skip
    return platform or channel


def _sandbox_message(ws):
    from channels.models import SandboxMessage

    return SandboxMessage.objects.create(
        workspace=ws, channel="email", address="a@example.com", subject="Hi", html="<p>Hi</p>"
    ).id


# channel lists (channels/list_urls.py): the objects their URLs name
def _channel_entry(ws, channel="email"):
    from channels.models import ChannelSegment

    segment = Segment.objects.create(workspace=ws, name=f"{channel}-list-{ws.slug}", kind="static")
    return ChannelSegment.objects.create(
        workspace=ws, channel=channel, segment=segment, name=segment.name, source="herald"
    ).id


def _channel_audience(ws, channel="email"):
    from channels.models import ChannelAudience

    return ChannelAudience.objects.create(
        workspace=ws, channel=channel, name=f"{channel}-audience-{ws.slug}"
    ).id


def _channel_sync(ws):
    from channels.models import ChannelSync

    return ChannelSync.objects.create(workspace=ws, channel="email", status="done").id


def _meta_export(ws):
    from channels.models import MetaExport

    return MetaExport.objects.create(
        workspace=ws, audience_id=_channel_audience(ws, "meta"), status="done"
    ).id


def _flow(ws):
    """A live flow with one step, people added by hand."""
    from accounts.audit import Actor
    from campaigns.flows.services import flow_create, flow_publish

    flow = flow_create(workspace=ws, name=f"flow-{ws.slug}", actor=Actor(system="tests"),
                       entry={"type": "manual"},
                       steps=[{"id": "tag", "type": "add_tag", "tag": "Flowed"}])  # fmt: skip
    flow_publish(flow=flow, actor=Actor(system="tests"))
    return flow.id


def _campaign(ws):
    """A draft email campaign with content, targeting everyone."""
    from campaigns.models import Campaign

    return Campaign.objects.create(
        workspace=ws,
        name=f"campaign-{ws.slug}",
        channel="email",
        everyone=True,
        content={"subject": "Hello", "text": "Hello there"},
    ).id


def _tag_name(ws):
    return Tag.objects.create(workspace=ws, name=f"tag-of-{ws.slug}").name


# kwarg name (or a tuple of names filled together) -> function(workspace) -> the value(s)
# that name an object of that workspace
OBJECT_MAKERS = {
    ("channel", "address"): _dnc_entry,
    "name": _tag_name,
    # a channel's provider account (channels.providers), a push platform's
    "channel": _provider,
    "platform": lambda ws: _provider(ws, "push", "ios"),
    "message_id": lambda ws: _sandbox_message(ws),
    "audience_id": lambda ws: TargetAudience.objects.create(workspace=ws, name=f"aud-{ws.slug}").id,
    "segment_id": lambda ws: (
        Segment.objects.create(workspace=ws, name=f"static-{ws.slug}", kind="static").id
    ),
    "tag_id": lambda ws: Tag.objects.create(workspace=ws, name=f"tag-id-of-{ws.slug}").id,
    "dnc_id": lambda ws: (
        dnc_add(workspace=ws, channel="sms", address="+447911123456", actor=Actor(system="tests"))[
            0
        ].id
    ),
    "member_id": lambda ws: MembershipFactory(workspace=ws).id,
    "api_key_id": lambda ws: (
        api_key_create(workspace=ws, name="walk", actor=Actor(system="tests"))[0].id
    ),
    "person_id": lambda ws: PersonFactory(workspace=ws).id,
    "external_id": lambda ws: PersonFactory(workspace=ws).external_id,
    "import_id": lambda ws: ContactImport.objects.create(workspace=ws, original_name="walk.csv").id,
    "audience_import_id": finished_dry_run,
    # an OFREP flag: segment-<id> of a segment with stored membership (segments.ofrep)
    "key": lambda ws: f"segment-{Segment.objects.get(workspace=ws, predefined='everyone').id}",
    # channel lists (channels/list_urls.py): objects of the "email" channel, the channel
    # the "channel" maker names; a Meta export of a Meta audience
    "entry_id": lambda ws: _channel_entry(ws),
    "channel_audience_id": lambda ws: _channel_audience(ws),
    "sync_id": lambda ws: _channel_sync(ws),
    "export_id": lambda ws: _meta_export(ws),
    "campaign_id": _campaign,
    "flow_id": _flow,
}

# URL trees that are not workspace pages: the Django admin (scoped and tested on its own),
# password reset links (uidb64/token name a user, not a workspace object), static docs, and
# providers' webhooks (/hooks/: no session, no key; the unguessable hook id and the
# provider's signature authenticate them, proven in tests/channels/test_esp.py and
# test_twilio_hooks.py: an unknown hook 404, a bad signature 403 and nothing changed), and
# the public links in messages (/u/ unsubscribe, /t/ tracking: no session, the signed token
# is the credential; tests/campaigns/test_unsubscribe.py proves a token not ours 404s and
# changes nothing), and the public banner API (/public/v1/: a publishable key names the
# workspace; tests/campaigns/test_banners.py proves another workspace's key and tokens
# see and change nothing of it).
SKIPPED_PREFIXES = ("admin/", "reset/<uidb64>/<token>/", "hooks/", "u/", "t/", "public/")

_PARAM = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass
class Route:
    route: str  # e.g. "settings/members/<int:member_id>/role/"
    callback: object
    name: str | None

    @property
    def kwarg_names(self) -> list[str]:
        return [m.group("name") for m in _PARAM.finditer(self.route)]

    @property
    def is_api(self) -> bool:
        """Key-authenticated (no session): the API, OFREP, the Segment-compatible /v1/."""
        return self.route.startswith(("api/", "ofrep/", "v1/"))

    def fill(self, values: dict) -> str:
        return "/" + _PARAM.sub(lambda m: str(values[m.group("name")]), self.route)


def _walk(patterns, prefix=""):
    for p in patterns:
        text = str(p.pattern)
        if text.startswith("^"):  # regex pattern (e.g. static serving)
            continue
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + text)
        elif isinstance(p, URLPattern):
            yield Route(route=prefix + text, callback=p.callback, name=p.name)


def all_routes() -> list[Route]:
    return [
        r for r in _walk(get_resolver().url_patterns) if not r.route.startswith(SKIPPED_PREFIXES)
    ]


def routes_with_objects() -> list[Route]:
    return [r for r in all_routes() if r.kwarg_names]


def fill_for(route: Route, workspace) -> str:
    values = {}
    names = route.kwarg_names
    for key, maker in OBJECT_MAKERS.items():
        if isinstance(key, tuple) and set(key) <= set(names):
            values.update(maker(workspace))
    for name in names:
        if name in values:
            continue
        if name not in OBJECT_MAKERS:
            raise AssertionError(
                f"URL {route.route!r} takes <{name}>, which tests/urlwalk.py cannot make: "
                "add it to OBJECT_MAKERS so isolation and permissions cover this URL."
            )
        values[name] = OBJECT_MAKERS[name](workspace)
    return route.fill(values)
