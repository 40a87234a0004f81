"""In-app banners (campaigns.banners, shared/API.md "Banners (public)"): live banners
served per placement to the people they target, by priority weight without replacement;
no database query on a warm request; dismissals honoured at once; a cancelled banner gone
on the next request, an expired one at its moment; publishable keys only; CORS for the
workspace's origins only; events batched into counts and unique viewers; bad input."""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.audit import Actor
from accounts.models import ApiKeyKind
from accounts.services import api_key_create, api_key_revoke
from campaigns import banners
from campaigns.models import BannerStat, BannerViewer, Campaign, Placement
from campaigns.services import (
    banner_end,
    banners_due,
    campaign_cancel,
    campaign_create,
    campaign_launch,
)
from people.models import Person
from segments.services import segment_create, static_members_change
from segments.signals import membership_moved
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
URL = "/public/v1/banners"


def clear_banner_cache() -> redis.Redis:
    """The per-process caches and Redis keys of campaigns.banners (ids restart with each
    test database: a state cached by an earlier run must not be read)."""
    from django.conf import settings

    banners._snapshots.clear()
    banners._keys.clear()
    banners._origins.clear()
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("herald:banners:*"):
        client.delete(key)
    return client


@pytest.fixture(autouse=True)
def fresh_cache():
    yield clear_banner_cache()
    clear_banner_cache()


@pytest.fixture
def key(workspace):
    return api_key_create(workspace=workspace, name="App", actor=ACTOR,
                          kind=ApiKeyKind.PUBLISHABLE)[1]  # fmt: skip


def static(workspace, name, people):
    segment = segment_create(workspace=workspace, name=name, kind="static", actor=ACTOR)
    static_members_change(segment=segment, people=Person.objects.filter(
        pk__in=[p.pk for p in people]), add=True, actor=ACTOR)  # fmt: skip
    return segment


def banner(workspace, title, *, placement="top", priority=50, include=(), exclude=(),
           everyone=False, launch=True, **fields):  # fmt: skip
    content = {"placement": placement, "title": title, "body": "Body", "priority": priority,
               "cta_label": "Go", "cta_url": "https://shop.example.com/"}  # fmt: skip
    campaign = campaign_create(workspace=workspace, name=title, channel="banner",
                               content=content, include=include, exclude=exclude,
                               everyone=everyone, actor=ACTOR, **fields)  # fmt: skip
    if launch:
        campaign = campaign_launch(campaign=campaign, actor=ACTOR)
    return campaign


def get(client, key, **params):
    return client.get(URL, {"key": key, **params})


def titles(response):
    assert response.status_code == 200, response.content
    return sorted(b["title"] for b in response.json()["banners"])


def test_banners_target_people_by_segment_everyone_and_exclusion(client, workspace, key):
    ann = PersonFactory(workspace=workspace, external_id="ann")
    bob = PersonFactory(workspace=workspace, external_id="bob")
    vip, churned = static(workspace, "VIP", [ann]), static(workspace, "Churned", [bob])
    banner(workspace, "For VIPs", include=[vip])
    banner(workspace, "For all", placement="sidebar", everyone=True)
    banner(workspace, "Not churned", placement="hero", everyone=True, exclude=[churned])
    banner(workspace, "Draft", everyone=True, launch=False)
    both = {"placement": "top,sidebar,hero"}
    assert titles(get(client, key, person="ann", **both)) == ["For VIPs", "For all",
                                                              "Not churned"]  # fmt: skip
    assert titles(get(client, key, person="bob", **both)) == ["For all"]
    # no person: what targets Everyone; an unknown person or placement: nothing, no error
    assert titles(get(client, key, **both)) == ["For all", "Not churned"]
    assert titles(get(client, key, person="nobody", **both)) == []
    assert titles(get(client, key, person="ann", placement="footer")) == []
    answer = get(client, key, person="ann", placement="top").json()["banners"][0]
    assert set(answer) == {"id", "placement", "title", "body", "image_url", "cta_label",
                           "cta_url", "dismissible", "token"}  # fmt: skip


def test_a_warm_request_makes_no_database_query(client, workspace, key):
    workspace.banner_allowed_origins = ["https://shop.example.com"]
    workspace.save()
    people = [PersonFactory(workspace=workspace, external_id=f"p{i}") for i in range(5)]
    segments = [static(workspace, f"S{i}", people[: i + 1]) for i in range(5)]
    for i in range(50):
        banner(workspace, f"B{i}", placement=("top", "hero", "sidebar")[i % 3],
               include=[segments[i % 5]], priority=1 + i)  # fmt: skip
    params = {"key": key, "person": "p2", "placement": "top,hero,sidebar"}
    origin = {"HTTP_ORIGIN": "https://shop.example.com"}  # from a page: CORS checked too
    assert len(client.get(URL, params, **origin).json()["banners"]) == 3  # warms the caches
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            response = client.get(URL, params, **origin)
            assert len(response.json()["banners"]) == 3
            assert response["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_rotation_follows_the_weights_within_a_point():
    live = [banners.LiveBanner(id=i, placement="top", weight=w, everyone=True,
                               include=frozenset(), exclude=frozenset(), starts_at=None,
                               ends_at=None, payload={})
            for i, w in enumerate([5, 15, 30, 50])]  # fmt: skip
    import random

    rng = random.Random(12)
    picks = Counter(banners.pick(live, 1, rng)[0].id for _ in range(100_000))
    total = sum(b.weight for b in live)
    for b in live:
        assert abs(picks[b.id] / 100_000 - b.weight / total) < 0.01, picks
    # two per request: distinct, never the same banner twice
    for _ in range(1000):
        two = banners.pick(live, 2, rng)
        assert len({b.id for b in two}) == 2


def test_max_banners_per_placement_drawn_without_replacement(client, workspace, key):
    Placement.objects.create(workspace=workspace, key="feed", name="Feed", max_banners=2)
    for i in range(4):
        banner(workspace, f"F{i}", placement="feed", everyone=True)
    seen = Counter()
    for _ in range(40):
        got = titles(get(client, key, placement="feed"))
        assert len(got) == 2 and len(set(got)) == 2
        seen.update(got)
    assert len(seen) == 4  # each got its turn


def test_a_dismissal_is_honoured_at_once(client, workspace, key):
    PersonFactory(workspace=workspace, external_id="ann")
    banner(workspace, "Sale", everyone=True)
    token = get(client, key, person="ann", placement="top").json()["banners"][0]["token"]
    # as the snippet sends it (sendBeacon): JSON as text/plain, a CORS simple request
    r = client.post(f"/public/v1/banners/events?key={key}",
                    json.dumps({"token": token, "type": "dismiss"}),
                    content_type="text/plain;charset=UTF-8")  # fmt: skip
    assert r.status_code == 204
    assert titles(get(client, key, person="ann", placement="top")) == []
    assert titles(get(client, key, placement="top")) == ["Sale"]  # others still see it


def test_cancelled_ended_and_expired_banners_stop_being_served(
    client, workspace, key, django_capture_on_commit_callbacks
):
    now = datetime.now(UTC)
    with django_capture_on_commit_callbacks(execute=True):
        cancelled = banner(workspace, "Cancelled", everyone=True)
        ended = banner(workspace, "Ended", placement="hero", everyone=True)
        banner(workspace, "Expiring", placement="sidebar", everyone=True,
               expires_at=now + timedelta(minutes=10))  # fmt: skip
    all_three = {"placement": "top,hero,sidebar"}
    assert titles(get(client, key, **all_three)) == ["Cancelled", "Ended", "Expiring"]
    with django_capture_on_commit_callbacks(execute=True):
        campaign_cancel(campaign=cancelled, actor=ACTOR)
        banner_end(campaign=ended, actor=ACTOR)
    assert titles(get(client, key, **all_three)) == ["Expiring"]  # at once, in cache too
    # the expiry: the cached snapshot knows the moment (no invalidation, no beat needed)
    later = now + timedelta(minutes=10, seconds=1)
    assert banners.serve(workspace.pk, ["sidebar"], "", now=later) == []
    assert banners_due(now=later) == {"live": 0, "expired": 1}
    assert Campaign.objects.get(name="Expiring").status == "expired"


def test_a_scheduled_banner_is_served_from_its_start(workspace, key):
    start = datetime.now(UTC) + timedelta(hours=1)
    scheduled = banner(workspace, "Soon", everyone=True, launch=False)
    scheduled = campaign_launch(campaign=scheduled, actor=ACTOR, send_at=start)
    assert scheduled.status == "scheduled"
    assert banners.serve(workspace.pk, ["top"], "", now=start - timedelta(seconds=1)) == []
    assert [b["title"] for b in banners.serve(workspace.pk, ["top"], "", now=start)] == ["Soon"]
    assert banners_due(now=start) == {"live": 1, "expired": 0}


def test_keys_publishable_only(client, workspace, other_workspace, key):
    banner(workspace, "Sale", everyone=True)
    assert get(client, "hpk_nope").status_code == 401
    assert client.get(URL, {"placement": "top"}).status_code == 401
    _, secret = api_key_create(workspace=workspace, name="Server", actor=ACTOR)
    refused = get(client, secret, placement="top")
    assert refused.status_code == 403 and "publishable" in refused.json()["detail"]
    # the header works as the query does; a revoked key stops (within the 5 s key cache)
    assert titles(client.get(URL, {"placement": "top"}, HTTP_X_HERALD_KEY=key)) == ["Sale"]
    from accounts.models import ApiKey

    api_key = ApiKey.objects.for_workspace(workspace).get(kind="publishable")
    api_key_revoke(api_key=api_key, actor=ACTOR)
    banners._keys.clear()  # the 5 s key cache elapsed
    assert get(client, key, placement="top").status_code == 401
    # a publishable key reads nothing of the rest of the API
    _, other = api_key_create(workspace=workspace, name="App 2", actor=ACTOR,
                              kind=ApiKeyKind.PUBLISHABLE)  # fmt: skip
    assert client.get("/api/v1/people", HTTP_AUTHORIZATION=f"Bearer {other}").status_code in (
        401, 403)  # fmt: skip
    # another workspace's key sees only its own (none)
    _, theirs = api_key_create(workspace=other_workspace, name="Theirs", actor=ACTOR,
                               kind=ApiKeyKind.PUBLISHABLE)  # fmt: skip
    assert titles(get(client, theirs, placement="top")) == []
    # the demo page's preview token reads its workspace's banners
    assert titles(get(client, banners.preview_token(workspace.pk), placement="top")) == ["Sale"]
    assert get(client, banners.PREVIEW_PREFIX + "forged", placement="top").status_code == 401


def test_cors_only_for_the_workspaces_origins(client, workspace, key):
    workspace.banner_allowed_origins = ["https://shop.example.com"]
    workspace.save()
    banner(workspace, "Sale", everyone=True)
    ok = client.get(URL, {"key": key, "placement": "top"}, HTTP_ORIGIN="https://shop.example.com")
    assert ok["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "Access-Control-Allow-Credentials" not in ok
    other = client.get(URL, {"key": key, "placement": "top"}, HTTP_ORIGIN="https://evil.test")
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other
    preflight = client.options(f"{URL}?key={key}", HTTP_ORIGIN="https://shop.example.com",
                               HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")  # fmt: skip
    assert preflight["Access-Control-Allow-Origin"] == "https://shop.example.com"
    # the rest of Herald answers no CORS at all
    page = client.get("/login/", HTTP_ORIGIN="https://shop.example.com")
    assert "Access-Control-Allow-Origin" not in page


def test_events_are_batched_into_counts_and_unique_viewers(client, workspace, key):
    ann = PersonFactory(workspace=workspace, external_id="ann")
    campaign = banner(workspace, "Sale", everyone=True)
    person_token = get(client, key, person="ann", placement="top").json()["banners"][0]["token"]
    anonymous = get(client, key, placement="top").json()["banners"][0]["token"]
    post = f"/public/v1/banners/events?key={key}"
    for token, kind in [(person_token, "impression"), (person_token, "impression"),
                        (anonymous, "impression"), (person_token, "click")]:  # fmt: skip
        assert client.post(post, {"token": token, "type": kind},
                           content_type="application/json").status_code == 204  # fmt: skip
    assert not BannerStat.objects.exists()  # nothing written on the hot path
    assert banners.flush_events() == 4
    stat = BannerStat.objects.get(campaign=campaign)
    assert (stat.impressions, stat.clicks, stat.dismissals) == (3, 1, 0)
    viewer = BannerViewer.objects.get(campaign=campaign)
    assert viewer.person_id == ann.pk and viewer.clicked_at is not None
    assert banners.flush_events() == 0


@pytest.mark.parametrize(("body", "status"), [
    ({"token": "nope", "type": "impression"}, 422),
    ({"type": "impression"}, 422),
    ({"token": "x", "type": "hover"}, 422),
    ("not json", 422),
])  # fmt: skip
def test_bad_events_are_refused(client, workspace, key, body, status):
    r = client.post(f"/public/v1/banners/events?key={key}", body,
                    content_type="application/json" if isinstance(body, dict) else "text/plain")
    assert r.status_code == status


def test_another_workspaces_token_is_refused(client, workspace, other_workspace, key):
    banner(other_workspace, "Theirs", everyone=True)
    theirs = banners.serve(other_workspace.pk, ["top"], "")[0]["token"]
    r = client.post(f"/public/v1/banners/events?key={key}", {"token": theirs, "type": "click"},
                    content_type="application/json")  # fmt: skip
    assert r.status_code == 422


@pytest.mark.parametrize(("content", "field"), [
    ({"cta_url": "javascript:alert(1)"}, "cta_url"),
    ({"image_url": "ftp://x/y.png"}, "image_url"),
    ({"title": "Hi {{ person.first_name }}"}, "title"),
    ({"placement": "nowhere"}, "placement"),
    ({"priority": 0}, "priority"),
])  # fmt: skip
def test_bad_banner_content_is_a_422_naming_the_field(api_client, workspace, content, field):
    body = {"name": "B", "channel": "banner", "everyone": True,
            "content": {"placement": "top", "title": "Sale", **content}}  # fmt: skip
    r = api_client.post("/api/v1/campaigns", body, content_type="application/json")
    assert r.status_code == 422 and field in r.content.decode(), r.content


def test_a_real_time_move_drops_the_persons_cached_state(client, workspace, key, fresh_cache):
    ann = PersonFactory(workspace=workspace, external_id="ann")
    vip = static(workspace, "VIP", [])
    banner(workspace, "VIP", include=[vip])
    assert titles(get(client, key, person="ann", placement="top")) == []
    assert fresh_cache.exists(banners._person_key(workspace.pk, "ann"))
    static_members_change(segment=vip, people=Person.objects.filter(pk=ann.pk), add=True,
                          actor=ACTOR)  # fmt: skip
    membership_moved.send(sender=None, workspace_id=workspace.pk, segment_id=vip.pk,
                          person_ids=frozenset([ann.pk]))  # fmt: skip
    assert not fresh_cache.exists(banners._person_key(workspace.pk, "ann"))
    assert titles(get(client, key, person="ann", placement="top")) == ["VIP"]


def test_a_tampered_token_or_a_malformed_cached_state_is_handled(client, workspace, key,
                                                                 fresh_cache):  # fmt: skip
    PersonFactory(workspace=workspace, external_id="ann")
    mine = banner(workspace, "Mine", everyone=True)
    token = banners.serve(workspace.pk, ["top"], "ann")[0]["token"]
    value, mac = token.split(".")
    ws, campaign, person = value.split("-")
    forged = f"{ws}-{campaign}-{banners.b62(banners.from_b62(person) + 1)}.{mac}"
    assert banners.read_token(forged) is None and banners.read_token(token)[1] == mine.pk
    fresh_cache.set(banners._person_key(workspace.pk, "ann"), "not json")
    assert titles(get(client, key, person="ann", placement="top")) == ["Mine"]  # recomputed


def test_a_banner_through_the_campaigns_api(api_client, workspace, key):
    created = api_client.post("/api/v1/campaigns", {
        "name": "Sale bar", "channel": "banner", "everyone": True,
        "content": {"placement": "top", "title": "Sale", "priority": 80},
    }, content_type="application/json")  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["content"]["dismissible"] is True and body["audience"] is None
    launched = api_client.post(f"/api/v1/campaigns/{body['id']}/launch", {},
                               content_type="application/json")  # fmt: skip
    assert launched.status_code == 202 and launched.json()["status"] == "live"
    assert banners.serve(workspace.pk, ["top"], "")[0]["title"] == "Sale"
    # a live banner is not edited (end it, or cancel it); cancelled: not served
    changed = api_client.patch(f"/api/v1/campaigns/{body['id']}", {"name": "X"},
                               content_type="application/json")  # fmt: skip
    assert changed.status_code == 409
    cancelled = api_client.post(f"/api/v1/campaigns/{body['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    banners._snapshots.clear()  # as the invalidation does on commit
    assert banners.serve(workspace.pk, ["top"], "") == []
    # nothing targeted: refused before anything changes
    bare = api_client.post("/api/v1/campaigns", {"name": "B", "channel": "banner",
                           "content": {"placement": "top", "title": "T"}},
                           content_type="application/json").json()  # fmt: skip
    refused = api_client.post(f"/api/v1/campaigns/{bare['id']}/launch", {},
                              content_type="application/json")  # fmt: skip
    assert refused.status_code == 422 and "No recipients" in refused.content.decode()
