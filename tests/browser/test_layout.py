"""Every page of the demo, at 1366 px and at 390 px: nothing makes the page scroll
sideways, no button, field or badge sticks out of its card, no button's words are cut,
and no select hides its chosen option ("Admi..."). The long email of a teammate and of a
person are part of the demo here, because they are what broke these pages before."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.audit import Actor
from accounts.management.commands.seed_demo import DEMO_PASSWORD
from accounts.models import Membership, Role, User, Workspace
from audiences.models import AudienceImport, TargetAudience
from channels.transports.base import OutboundMessage
from channels.transports.sandbox import SandboxTransport
from people.models import ContactImport, DoNotContact
from people.services.dnc import dnc_add
from people.services.people import person_upsert
from segments.models import Segment, SegmentKind
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_EMAIL = "bartholomew.featherstonehaugh-montgomery@very-long-subsidiary.example.co.uk"

# the function of layout_problems.js, without its comment lines (page.evaluate takes it)
LAYOUT_PROBLEMS = "\n".join(
    line
    for line in (Path(__file__).parent / "layout_problems.js").read_text().splitlines()
    if not line.startswith("//")
)


def _channel_list_pages(ws, static, actor):
    """A channel's Segments and Audiences tabs with an entry and an audience, and Meta's."""
    from channels import list_services
    from segments.services import segment_create

    static = static or segment_create(workspace=ws, name="Layout static", kind="static",
                                      actor=actor)  # fmt: skip
    pages = []
    for channel in ("email", "meta"):
        entry = list_services.channel_segment_add(
            workspace=ws, channel=channel, segment=static, actor=actor
        )
        audience = list_services.channel_audience_create(
            workspace=ws, channel=channel, actor=actor,
            data={"name": "Spring sale: everything in the Featherstonehaugh collection",
                  "include": [entry.pk], "estimated_volume": 250_000},
        )  # fmt: skip
        kwargs = {"channel": channel, "channel_audience_id": audience.pk}
        pages += [
            reverse("channel_segments", kwargs={"channel": channel}),
            reverse("channel_segment_edit", kwargs={"channel": channel, "entry_id": entry.pk}),
            reverse("channel_audiences", kwargs={"channel": channel}),
            reverse("channel_audience_detail", kwargs=kwargs),
            reverse("channel_audience_edit", kwargs=kwargs),
        ]
    pages += [
        reverse("channel_segment_upload", kwargs={"channel": "email"}),
        reverse("channel_source", kwargs={"channel": "email"}),
        reverse("channel_audience_new", kwargs={"channel": "email"}),
    ]
    return pages


def demo_pages():
    """The demo's pages: every list, one of each detail page, the forms."""
    call_command("seed_demo", stdout=StringIO())
    ws = Workspace.objects.get(slug="acme-retail")
    actor = Actor(system="tests")
    owner = User.objects.get(email="owner@demo.herald")
    Membership.objects.create(workspace=ws, user=UserFactory(email=LONG_EMAIL), role=Role.MARKETER)
    person, _ = person_upsert(
        workspace=ws,
        external_id="crm-long-email",
        data={"first_name": "Bartholomew", "last_name": "Featherstonehaugh", "email": LONG_EMAIL},
        actor=actor,
    )
    dnc_add(workspace=ws, channel="email", address=LONG_EMAIL, reason="tests", actor=actor)
    snapshot = Segment.objects.filter(workspace=ws, kind=SegmentKind.SNAPSHOT).first()
    realtime = Segment.objects.filter(workspace=ws, kind=SegmentKind.REALTIME).first()
    static = Segment.objects.filter(workspace=ws, kind=SegmentKind.STATIC).first()
    audience = TargetAudience.objects.filter(workspace=ws).order_by("-people_count").first()
    pages = [
        reverse("dashboard"),
        reverse("people_list"),
        reverse("people_list") + "?city=London&c-0-0-attribute=city&c-0-0-op=is&c-0-0-value=Paris",
        reverse("person_detail", kwargs={"person_id": person.pk}),
        reverse("attribute_list"),
        reverse("tag_list"),
        reverse("dnc_list"),
        reverse("contact_import_new"),
        reverse(
            "contact_import_detail",
            kwargs={"import_id": ContactImport.objects.filter(workspace=ws).first().pk},
        ),
        reverse("segment_list"),
        reverse("segment_new"),
        reverse("audience_list"),
        reverse("audience_detail", kwargs={"audience_id": audience.pk}),
        reverse("audience_import_new"),
        reverse(
            "audience_import_detail",
            kwargs={"audience_import_id": AudienceImport.objects.filter(workspace=ws).first().pk},
        ),
        reverse("settings_workspace"),
        reverse("settings_members"),
        reverse("settings_api_keys"),
        reverse("settings_audit"),
        reverse("glossary"),
        reverse("channel_list"),
        reverse("channel_provider", kwargs={"channel": "email", "platform": ""}),
        reverse("channel_provider", kwargs={"channel": "push", "platform": "web"}),
        reverse("channel_provider", kwargs={"channel": "sms", "platform": ""}) + "?kind=twilio",
        reverse("sandbox_inbox"),
    ]
    pages += _channel_list_pages(ws, static, actor)
    # the demo's campaigns: a sent email (stats, chart, log), an SMS draft (the editor) and
    # an A/B test mid-way (its table, its chart, the variants in the editor)
    from campaigns.models import Campaign

    sent = Campaign.objects.for_workspace(ws).get(name="Spring sale")
    ab = Campaign.objects.for_workspace(ws).exclude(variants=[]).get()
    banner = Campaign.objects.for_workspace(ws).filter(channel="banner").first()
    from campaigns.models import Flow

    flow = Flow.objects.for_workspace(ws).get()
    draft = Campaign.objects.for_workspace(ws).get(channel="sms")
    pages += [
        reverse("campaign_list"),
        reverse("campaign_detail", kwargs={"campaign_id": sent.pk}),
        reverse("campaign_log", kwargs={"campaign_id": sent.pk}),
        reverse("campaign_detail", kwargs={"campaign_id": draft.pk}),
        reverse("campaign_edit", kwargs={"campaign_id": draft.pk}),
        reverse("campaign_detail", kwargs={"campaign_id": ab.pk}),
        reverse("campaign_edit", kwargs={"campaign_id": ab.pk}),
        # the demo's banners: one's page and editor, the placements, the demo page
        reverse("campaign_detail", kwargs={"campaign_id": banner.pk}),
        reverse("campaign_edit", kwargs={"campaign_id": banner.pk}),
        reverse("placement_list"),
        reverse("banner_demo"),
        # the demo's flow: the list, its page with its steps as a tree, its run log
        reverse("flow_list"),
        reverse("flow_detail", kwargs={"flow_id": flow.pk}),
        reverse("flow_runs", kwargs={"flow_id": flow.pk}),
    ]
    # the demo's channels record into the Sandbox inbox: one message of each kind, long
    for channel, fields in (
        ("email", {"subject": "Spring sale: everything in the Featherstonehaugh collection "
                   "is 20% off until Sunday", "html": "<h1>Spring sale</h1><p>" + "Hello " * 80,
                   "text": "Spring sale", "headers": {"List-Unsubscribe": "<https://demo."
                   "herald/u/averyveryverylongunsubscribetoken0123456789abcdef>"}}),
        ("sms", {"body": "Acme Retail: your order is ready for pick-up 🎉 " * 4}),
        ("push", {"title": "Back in stock", "body": "The Featherstonehaugh jacket is back."}),
    ):  # fmt: skip
        (sent,) = SandboxTransport(workspace=ws, channel=channel).send_many(
            [OutboundMessage(channel=channel, address=LONG_EMAIL if channel == "email"
                             else "+447911123456", **fields)]
        )  # fmt: skip
        message_id = int(sent.provider_message_id.removeprefix("sandbox-"))
        pages.append(reverse("sandbox_message", kwargs={"message_id": message_id}))
    for segment in (snapshot, realtime, static):
        if segment is not None:
            pages.append(reverse("segment_detail", kwargs={"segment_id": segment.pk}))
            pages.append(reverse("segment_edit", kwargs={"segment_id": segment.pk}))
    assert DoNotContact.objects.filter(workspace=ws, address=LONG_EMAIL).exists()
    return owner, pages


def test_every_page_fits_the_screen(page, viewport):
    owner, pages = demo_pages()
    page.goto("/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
    found = {}
    for url in pages:
        response = page.goto(url)
        assert response.status == 200, (url, response.status)
        page.wait_for_load_state("networkidle")
        problems = page.evaluate(LAYOUT_PROBLEMS)
        if problems:
            found[url] = problems
    assert not found, f"at {viewport}:\n" + "\n".join(
        f"{url}\n  " + "\n  ".join(problems) for url, problems in found.items()
    )


BROKEN = """<!doctype html><html><head><style>
  body { margin: 0; font: 16px sans-serif; } .card { width: 200px; border: 1px solid; }
  .btn { display: inline-block; white-space: nowrap; } .narrow { width: 60px; overflow: hidden; }
</style></head><body><main>
  <div class="card"><span class="btn" style="margin-left: 150px">Block email</span></div>
  <div class="card"><span class="btn narrow">Remove selected people</span></div>
  <div class="card"><select style="width: 50px"><option>Administrator</option></select></div>
  <div style="width: 900px">a wide row</div>
</main></body></html>"""


def test_the_layout_check_sees_what_broke_these_pages(page, viewport):
    """The check above can fail: a button out of its card (the profile's "Block email"),
    a button whose words are cut, a select cut to "Admi…" and a row wider than a phone."""
    page.set_content(BROKEN)
    problems = "\n".join(page.evaluate(LAYOUT_PROBLEMS))
    assert 'span "Block email" sticks out of its card' in problems
    assert 'span "Remove selected people": its words are cut' in problems
    assert 'cuts its chosen option "Administrator"' in problems
    if viewport == "phone":
        assert "the page scrolls sideways" in problems
