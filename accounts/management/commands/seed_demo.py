"""Loads the demo: two workspaces, a user with each role, a few thousand people with
events, segments on custom attributes and events, and a finished contact import (with an
error report) and audience import, so every page has something to show.

Idempotent: running it again changes nothing that is already there.
"""

import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import Actor
from accounts.models import Membership, Role, Workspace
from audiences.import_services import audience_import_run, audience_import_start
from audiences.models import AudienceImport, MemberSource
from audiences.services import audience_add_people, audience_get_or_create
from people.imports.services import (
    contact_import_analyze,
    contact_import_confirm,
    contact_import_create,
    contact_import_run,
)
from people.models import Company, ContactImport, Person
from people.services.attributes import attribute_declare
from people.services.events import event_ingest_batch
from people.services.tags import tag_get_or_create, tags_assign
from segments.models import Segment
from segments.services import ensure_predefined, segment_count, segment_create

ACTOR = Actor(system="manage.py seed_demo")  # who the demo data is attributed to

DEMO_PASSWORD = "herald-demo"
WORKSPACES = [
    ("Acme Retail", "acme-retail", "Europe/London", 3000),
    ("Globex Mobile", "globex-mobile", "America/New_York", 1500),
]
USERS = [  # email, name, role in Acme, role in Globex (None: not a member)
    ("owner@demo.herald", "Olivia Owner", Role.OWNER, Role.OWNER),
    ("admin@demo.herald", "Adam Admin", Role.ADMIN, None),
    ("marketer@demo.herald", "Maya Marketer", Role.MARKETER, Role.MARKETER),
    ("ops@demo.herald", "Oscar Ops", Role.OPS, None),
    ("viewer@demo.herald", "Vera Viewer", Role.VIEWER, Role.VIEWER),
]
FIRST = (
    "Ada Ben Chloe Dan Eva Finn Grace Hugo Iris Jack Kira Liam Mia Noah Olga Paul Rosa Sam Tara"
).split()
LAST = (
    "Smith Jones Brown Garcia Müller Rossi Dubois Kowalski Novak Silva Khan Tanaka Lee Walsh"
).split()
CITIES = [
    ("United Kingdom", "London"),
    ("United Kingdom", "Manchester"),
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Spain", "Madrid"),
    ("United States", "New York"),
    ("United States", "Austin"),
    ("Italy", "Milan"),
    ("Poland", "Warsaw"),
]
COMPANIES = ["", "", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises"]
PLANS = ["free", "starter", "pro", "enterprise"]
ATTRIBUTE_TYPES = {
    "plan": "string",
    "lifetime_value": "number",
    "newsletter": "boolean",
    "signup_date": "date",
}
EVENT_NAMES = ["App Launch", "Product Viewed", "Purchase", "Support Ticket"]


def ascii_email(address: str) -> str:
    """Müller -> mueller: an address every mail system (and the contact import) takes."""
    return address.replace("ü", "ue").lower()


def demo_people(workspace: Workspace, count: int) -> list[Person]:
    rng = random.Random(workspace.slug)  # the same people on every run
    companies = [None] * 2 + [
        Company.objects.get_or_create(workspace=workspace, name=name)[0]
        for name in COMPANIES
        if name
    ]
    people = []
    for i in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        country, city = rng.choice(CITIES)
        people.append(
            Person(
                workspace=workspace,
                external_id=f"{workspace.slug.split('-')[0]}-{i:05d}",
                email=ascii_email(f"{first}.{last}.{i}@example.com"),
                phone=f"+447911{i:06d}" if rng.random() < 0.7 else "",
                first_name=first,
                last_name=last,
                gender=rng.choice(["female", "male", "", "non-binary"]),
                country=country,
                city=city,
                company=rng.choice(companies),
                attributes={
                    "plan": rng.choice(PLANS),
                    "lifetime_value": round(rng.uniform(0, 2500), 2),
                    "newsletter": rng.random() < 0.6,
                    "signup_date": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}",
                },
            )
        )
    return people


ANALYZED_TABLES = (
    "people_person",
    "people_event",
    "people_persontag",
    "people_tag",
    "people_eventtype",
    "people_attributedefinition",
)


def seed_activity(workspace: Workspace) -> None:
    """Typed attributes, tags and a few weeks of events, through the same services the
    API uses, so the demo's profiles, filters and segments have something to show."""
    rng = random.Random(f"{workspace.slug}-activity")
    for key, kind in ATTRIBUTE_TYPES.items():
        attribute_declare(workspace=workspace, key=key, type=kind, actor=ACTOR)
    people = Person.objects.for_workspace(workspace)
    vip = tag_get_or_create(workspace=workspace, name="VIP", actor=ACTOR)
    enterprise = people.filter(attributes__plan="enterprise")
    tags_assign(workspace=workspace, tag=vip, people=enterprise, actor=ACTOR)
    newsletter = tag_get_or_create(workspace=workspace, name="Newsletter", actor=ACTOR)
    tags_assign(
        workspace=workspace,
        tag=newsletter,
        people=people.filter(attributes__newsletter=True),
        actor=ACTOR,
    )
    for name, members in [
        ("Londoners", people.filter(city="London")),
        ("High value", people.filter(attributes__lifetime_value__gte=1500)),
    ]:
        audience, _ = audience_get_or_create(workspace=workspace, name=name, actor=ACTOR)
        audience_add_people(
            audience=audience, people=members, source=MemberSource.MANUAL, actor=ACTOR
        )
    now = timezone.now()
    external_ids = list(people.values_list("external_id", flat=True))
    events = []
    for external_id in external_ids:
        for _ in range(rng.choice([0, 1, 2, 4, 8])):
            name = rng.choices(EVENT_NAMES, weights=[8, 3, 2, 1])[0]
            events.append(
                {
                    "person": external_id,
                    "name": name,
                    "occurred_at": now - timedelta(minutes=rng.randint(5, 60 * 24 * 60)),
                    "properties": {"amount": round(rng.uniform(5, 200), 2)}
                    if name == "Purchase"
                    else {},
                }
            )
    for start in range(0, len(events), 1000):
        batch = events[start : start + 1000]
        event_ingest_batch(workspace=workspace, items=batch, now=now, actor=ACTOR)
    # Fresh tables have no statistics until autovacuum comes by (a minute or more later):
    # without them PostgreSQL plans the segment queries below, and the demo's first
    # pages, as if the tables were empty (a 7 s count instead of 90 ms).
    with connection.cursor() as cursor:
        for table in ANALYZED_TABLES:
            cursor.execute(f"ANALYZE {table}")  # noqa: S608 - our own table names
    for segment in Segment.objects.for_workspace(workspace).exclude(predefined=""):
        segment_count(segment=segment, now=now)
    segment_create(
        workspace=workspace,
        name="Londoners active this month",
        kind="realtime",
        rules={
            "all": [
                {"attribute": "city", "op": "is", "value": "London"},
                {
                    "event": "App Launch",
                    "time": {"op": "within_last", "amount": 30, "unit": "days"},
                },
            ]
        },
        now=now,
        actor=ACTOR,
    )
    for name, kind, rules in DEMO_SEGMENTS:
        segment = segment_create(
            workspace=workspace, name=name, kind=kind, rules=rules, now=now,
            refresh_every_minutes=60 if kind == "query" else None, actor=ACTOR
        )  # fmt: skip
        if kind == "snapshot":  # the list shows a count from the start
            segment_count(segment=segment, now=now)


# Segments on custom attributes (typed: text, number, boolean, date) and on events (counts,
# windows, property filters), of each kind that has rules.
DEMO_SEGMENTS = [
    ("Paying customers worth 1,000+", "snapshot", {"all": [
        {"attribute": "plan", "op": "in", "value": ["starter", "pro", "enterprise"]},
        {"attribute": "lifetime_value", "op": "gte", "value": 1000},
    ]}),
    ("Newsletter readers who signed up since June", "query", {"all": [
        {"attribute": "newsletter", "op": "is", "value": True},
        {"attribute": "signup_date", "op": "since", "value": "2026-06-01"},
    ]}),
    ("Big spenders of the last 30 days", "realtime", {"all": [
        {"event": "Purchase", "time": {"op": "within_last", "amount": 30, "unit": "days"},
         "where": [{"property": "amount", "op": "gte", "value": 100}]},
    ]}),
    ("Frequent app users", "snapshot", {"all": [
        {"event": "App Launch", "count": {"op": "gte", "value": 3},
         "time": {"op": "within_last", "amount": 60, "unit": "days"}},
    ]}),
    ("Lapsed: no launch in 3 weeks, not VIP", "snapshot", {"all": [
        {"not": {"event": "App Launch", "time": {"op": "within_last", "amount": 21,
                                                  "unit": "days"}}},
        {"tag": "VIP", "op": "has_not"},
    ]}),
]  # fmt: skip


def demo_contact_csv(workspace: Workspace) -> bytes:
    """A trade-show list: new people and people already known (matched by email), and four
    lines an import refuses, so the job page has an error report to download."""
    rng = random.Random(f"{workspace.slug}-contacts")
    known = list(
        Person.objects.for_workspace(workspace).order_by("id").values_list("email", flat=True)[:8]
    )
    lines = ["email,first_name,last_name,phone,city,plan,lifetime_value"]
    for email in known:
        lines.append(f"{email},,,,,pro,{rng.randint(100, 2000)}")
    for i in range(1, 33):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        lines.append(
            f"{ascii_email(f'{first}.{last}.fair{i}@example.org')},{first},{last},"
            f"+4420794600{i:02d},"
            f"{rng.choice(CITIES)[1]},{rng.choice(PLANS)},{rng.randint(0, 900)}"
        )
    lines += [
        "not-an-email,Broken,Address,,London,free,10",
        "zoe.quinn.fair@example.org,Zoe,Quinn,12,Paris,free,5",
        "max.fair@example.org,Max,Power,,Berlin,pro,lots",
        '=HYPERLINK("http://example.com"),Formula,Cell,,Madrid,free,1',
    ]
    return ("\n".join(lines) + "\n").encode()


def seed_imports(workspace: Workspace, user) -> None:
    """A contact import and an audience import, run as the worker would run them."""
    if not ContactImport.objects.for_workspace(workspace).exists():
        job = contact_import_create(
            workspace=workspace, uploaded_by=user,
            file=SimpleUploadedFile("trade-show-2026.csv", demo_contact_csv(workspace)), actor=ACTOR
        )  # fmt: skip
        job = contact_import_analyze(contact_import=job)
        job = contact_import_confirm(
            contact_import=job,
            options={"policy": "fill_empty", "tags": ["Trade show 2026"]},
            actor=ACTOR,
        )
        contact_import_run(import_id=job.id)
    if not AudienceImport.objects.for_workspace(workspace).exists():
        emails = list(
            Person.objects.for_workspace(workspace)
            .filter(attributes__plan__in=["pro", "enterprise"])
            .order_by("id")
            .values_list("email", flat=True)[:400]
        )
        body = "\n".join(emails + ["someone.unknown@example.net"]) + "\n"
        job = audience_import_start(
            workspace=workspace, uploaded_by=user,
            file=SimpleUploadedFile("webinar-attendees.csv", body.encode()),
            mode="single", identifier="email", audience_name="Webinar attendees", actor=ACTOR
        )  # fmt: skip
        audience_import_run(import_id=job.id)


def _sandbox_providers(ws):
    """Every sending channel of a demo workspace records into its Sandbox inbox: a
    newcomer can send and look at messages without an account anywhere."""
    from channels.models import Provider
    from channels.services import provider_set

    for channel in ("email", "sms", "push"):
        if not Provider.objects.for_workspace(ws).filter(channel=channel).exists():
            provider_set(workspace=ws, channel=channel, kind="sandbox", settings={}, secrets={},
                         actor=ACTOR)  # fmt: skip


DEMO_EMAIL = {
    "subject": "{{ person.first_name | default: 'Hello' }}, our spring sale is on",
    "preheader": "Up to 30% off this week",
    "text": "Hi {{ person.first_name | default: 'there' }},\n\nOur spring sale is on: up to "
            "30% off until Sunday.\n\nhttps://shop.example.com/sale",
    "html": "<h1>Hi {{ person.first_name | default: 'there' }},</h1><p>Our spring sale is on: "
            "<strong>up to 30% off</strong> until Sunday.</p>"
            "<p><a href=\"https://shop.example.com/sale\">Shop the sale</a></p>",
}  # fmt: skip


def seed_campaigns(workspace: Workspace) -> None:
    """A sent email campaign (through the Sandbox, so its stats, chart and log are there
    to look at) and an SMS draft, the first time only."""
    from campaigns.dispatch.send import dispatch
    from campaigns.models import Campaign
    from campaigns.services import (
        campaign_broadcast,
        campaign_launch,
        campaign_launch_run,
        campaign_update,
    )

    if Campaign.objects.for_workspace(workspace).exists():
        return
    people = Person.objects.for_workspace(workspace).order_by("id")
    chosen = people.filter(pk__in=people.values("pk")[:200])
    sale = campaign_broadcast(workspace=workspace, channel="email", people=chosen,
                              actor=ACTOR, name="Spring sale")  # fmt: skip
    sale = campaign_update(campaign=sale, actor=ACTOR, content=DEMO_EMAIL)
    launch = campaign_launch(campaign=sale, actor=ACTOR).launches.get()
    campaign_launch_run(launch_id=launch.pk)
    dispatch(sale.pk)
    few = people.filter(pk__in=people.values("pk")[:50])
    draft = campaign_broadcast(workspace=workspace, channel="sms", people=few,
                               actor=ACTOR, name="Flash sale reminder")  # fmt: skip
    campaign_update(campaign=draft, actor=ACTOR,
                    content={"body": "{{ person.first_name | default: 'Hi' }}: the sale "
                             "ends tonight. shop.example.com/sale"})  # fmt: skip
    seed_ab_test(workspace, people.exclude(email="")[:1000])
    seed_banners(workspace)
    seed_flow(workspace, people[:40])


def seed_flow(workspace: Workspace, people) -> None:
    """A live welcome flow with 40 people in it: tagged, then waiting a day before a
    branch on the VIP tag sends VIPs into the "VIP lounge" audience."""
    from campaigns.flows import engine
    from campaigns.flows.services import flow_add_people, flow_create, flow_publish

    lounge, _ = audience_get_or_create(workspace=workspace, name="VIP lounge", actor=ACTOR)
    flow = flow_create(workspace=workspace, name="Welcome series", actor=ACTOR,
                       entry={"type": "manual"}, reentry="never", steps=[
        {"id": "welcome", "label": "Tag as onboarding", "type": "add_tag", "tag": "Onboarding",
         "next": "wait"},
        {"id": "wait", "label": "Wait a day", "type": "wait",
         "for": {"amount": 1, "unit": "days"}, "next": "vip"},
        {"id": "vip", "label": "VIP?", "type": "branch",
         "rules": {"tag": "VIP", "op": "has"}, "yes": "lounge", "no": "done"},
        {"id": "lounge", "label": "Into the VIP lounge", "type": "add_to_audience",
         "audience": lounge.pk, "next": "done"},
        {"id": "done", "type": "exit"},
    ])  # fmt: skip
    flow_publish(flow=flow, actor=ACTOR)
    flow_add_people(flow=flow, people=Person.objects.filter(pk__in=[p.pk for p in people]),
                    actor=ACTOR, source="demo")  # fmt: skip
    engine.advance()


def seed_banners(workspace: Workspace) -> None:
    """Two live banners competing for the top of the page (weights 70 and 30) and one in
    the sidebar for everyone: the demo page (Campaigns, Banner demo page) shows them."""
    from campaigns.services import campaign_create, campaign_launch

    everyone = Segment.objects.for_workspace(workspace).filter(kind="everyone").first()
    for name, placement, weight, title, body in (
        ("Free shipping bar", "top", 70, "Free shipping this week",
         "On every order over €30, until Sunday."),
        ("App download bar", "top", 30, "Get the app",
         "Track your orders and get offers first."),
        ("Loyalty sidebar", "sidebar", 50, "Join the club",
         "Points on every order, and a birthday gift."),
    ):  # fmt: skip
        banner = campaign_create(
            workspace=workspace, name=name, channel="banner", actor=ACTOR, everyone=True,
            include=[everyone] if everyone else [],
            content={"placement": placement, "title": title, "body": body, "priority": weight,
                     "cta_label": "Learn more", "cta_url": "https://shop.example.com/",
                     "dismissible": True},
        )  # fmt: skip
        campaign_launch(campaign=banner, actor=ACTOR)


def seed_ab_test(workspace: Workspace, people) -> None:
    """An A/B test mid-way: two subjects tried on 30% of 1,000 people three hours ago, the
    people's opens recorded through the tracking path (B ahead), the rest waiting for the
    winner, chosen an hour from now (or by hand on the campaign page). The demo's history
    is made by launching three hours back and dating the sends then."""
    from campaigns import tracking
    from campaigns.dispatch.send import dispatch
    from campaigns.models import Delivery
    from campaigns.services import (
        campaign_broadcast,
        campaign_launch,
        campaign_launch_run,
        campaign_update,
    )

    chosen = Person.objects.filter(pk__in=[p.pk for p in people])
    test = campaign_broadcast(workspace=workspace, channel="email", people=chosen,
                              actor=ACTOR, name="Summer preview (A/B test)")  # fmt: skip
    campaign_update(
        campaign=test, actor=ACTOR, content={**DEMO_EMAIL, "subject": "Summer is coming"},
        variants=[{"name": "Plain", "percent": 50},
                  {"name": "Personal", "percent": 50, "content": {"subject": "{{ person."
                   "first_name | default: 'Hi' }}, a first look at summer ☀️"}}],
        ab_test={"percent": 30, "metric": "open", "decide_after_hours": 4},
    )  # fmt: skip
    then = timezone.now() - timedelta(hours=3)
    test = campaign_launch(campaign=test, actor=ACTOR, now=then)
    campaign_launch_run(launch_id=test.launches.get().pk, now=then)
    dispatch(test.pk, now=then)
    sent = Delivery.objects.filter(campaign=test, status="sent")
    sent.update(sent_at=then)
    rng = random.Random(7)
    for delivery in sent.only("pk", "variant"):
        if rng.random() < (0.36 if delivery.variant == "B" else 0.22):
            at = then + timedelta(minutes=rng.expovariate(1 / 40))
            hit = tracking.Hit(workspace.pk, test.pk, delivery.pk)
            tracking.record("o", hit, tracking.HUMAN, at=min(at, timezone.now()).timestamp())
    tracking.flush(now=timezone.now() + timedelta(minutes=1))


class Command(BaseCommand):
    help = "Load the demo workspaces, users and people (idempotent)."

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            workspaces = []
            for name, slug, tz, _ in WORKSPACES:
                ws, _ = Workspace.objects.get_or_create(
                    slug=slug, defaults={"name": name, "time_zone": tz}
                )
                ensure_predefined(workspace=ws)
                _sandbox_providers(ws)
                workspaces.append(ws)
            for email, full_name, *roles in USERS:
                user = User.objects.filter(email=email).first()
                if user is None:
                    user = User.objects.create_user(
                        email=email,
                        password=DEMO_PASSWORD,
                        full_name=full_name,
                    )  # nobody is staff: tenant admins do not need the Django admin
                for ws, role in zip(workspaces, roles, strict=True):
                    if role is not None:
                        Membership.objects.get_or_create(
                            workspace=ws, user=user, defaults={"role": role}
                        )
            for ws, (*_, count) in zip(workspaces, WORKSPACES, strict=True):
                if Person.objects.for_workspace(ws).exists():
                    continue  # already seeded: leave the demo as people have changed it
                Person.objects.bulk_create(
                    demo_people(ws, count), batch_size=500, ignore_conflicts=True
                )
                seed_activity(ws)
        ops = User.objects.get(email="owner@demo.herald")
        for ws in workspaces:  # the import services own their transactions
            seed_imports(ws, ops)
            seed_campaigns(ws)
        self.stdout.write(self.style.SUCCESS("Demo workspaces are ready:"))
        for ws in workspaces:
            n = Person.objects.for_workspace(ws).count()
            self.stdout.write(f"  {ws.name} ({ws.slug}): {n} people")
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for email, _, *roles in USERS:
            where = ", ".join(
                f"{ws.name} as {Role(r).label}"
                for ws, r in zip(workspaces, roles, strict=True)
                if r
            )
            self.stdout.write(f"  {email:<24} {where}")
