"""Open and click tracking (campaigns.tracking): links rewritten at send with the skips,
signed tokens (a forged one 404s and records nothing), redirects only to stored links,
hits queued in Redis and applied by the flush in batches (crash-safe, applied once),
machine opens and clicks apart, and what the stats, the page and the message conditions
make of them. Real PostgreSQL and Redis (REDIS_URL)."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.urls import reverse

from campaigns import tracking
from campaigns.models import Campaign, CampaignLink, Delivery
from campaigns.selectors import campaign_engagement, campaign_stats, top_links
from campaigns.templating import clean_content, compile_content, person_context
from campaigns.unsubscribe import public_base_url
from people.models import Person
from segments.rules import compile_rules, parse_rules
from tests.factories import PersonFactory

SENT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
MPP = "Mozilla/5.0"
HTML = """
<p>Hello {{ person.first_name | default: "there" }}</p>
<a href="https://shop.example.com/sale?a=1&b=2">Sale</a>
<a href="https://shop.example.com/sale?a=1&b=2">Sale again</a>
<a href="https://blog.example.com/">Blog</a>
<a href="mailto:help@example.com">Mail us</a>
<a href="tel:+442071234567">Call</a>
<a href="#top">Top</a>
<a href="https://shop.example.com/private" data-herald-notrack>Not tracked</a>
<a href="https://shop.example.com/u?id={{ person.external_id }}">Yours</a>
<a href="https://herald.test/u/abc.def">Unsubscribe</a>
"""


@pytest.fixture(autouse=True)
def redis_lists(settings):
    settings.PUBLIC_BASE_URL = "https://herald.test"
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = (tracking.HITS, tracking.PROCESSING, tracking.PROCESSING_SEQ, tracking.LOCK)
    client.delete(*keys)
    tracking._client = None
    tracking._down_until = 0.0
    yield client
    client.delete(*keys)
    tracking._client = None


def _campaign(ws, *, tracking_on=True, channel="email", html=HTML):
    content = (clean_content("email", {"subject": "Hi", "html": html, "text": "Hi"})
               if channel == "email" else {"title": "Hi", "body": "Hello"})  # fmt: skip
    return Campaign.objects.create(
        workspace=ws, name="Sale", channel=channel, status="sent", content=content,
        tracking=tracking_on, launched_at=SENT,
    )  # fmt: skip


def _delivery(campaign, external_id="ann", *, sent=SENT):
    person = PersonFactory(workspace=campaign.workspace, external_id=external_id,
                           first_name="Ann")  # fmt: skip
    return Delivery.objects.create(workspace=campaign.workspace, campaign=campaign,
                                   person=person, status="sent", sent_at=sent)  # fmt: skip


def _sent_html(campaign, delivery):
    """The email HTML as dispatch sends it: rendered for the person, then email_html."""
    rendered = compile_content("email", campaign.content).render(person_context(delivery.person))
    return tracking.email_html(campaign, rendered["html"], delivery.pk)


def _path(url):
    return url.removeprefix(public_base_url())


def _hit(client, url, ua=BROWSER, at=None):
    """GET a tracking URL; `at` pins the hit's time (the view stamps now) by rewriting the
    queued record's time, as if the request had come then."""
    response = client.get(_path(url), HTTP_USER_AGENT=ua)
    if at is not None and response.status_code in (200, 302):
        r = redis.Redis.from_url(settings.REDIS_URL)
        last = r.lindex(tracking.HITS, -1).decode().split(",")
        last[5] = str(int(at.timestamp() * 1000))
        r.lset(tracking.HITS, -1, ",".join(last))
    return response


def _flush(now=None, **kwargs):
    return tracking.flush(now=now or SENT + timedelta(days=1), **kwargs)


def _fresh(delivery):
    delivery.refresh_from_db()
    return delivery


def test_links_are_rewritten_with_the_skips_and_a_pixel_appended(workspace):
    campaign = _campaign(workspace)
    delivery = _delivery(campaign)
    html = _sent_html(campaign, delivery)
    links = list(CampaignLink.objects.for_workspace(workspace).filter(campaign=campaign))
    assert [(link.index, link.url) for link in links] == [
        (0, "https://shop.example.com/sale?a=1&b=2"),
        (1, "https://blog.example.com/"),
    ]
    assert html.count("https://herald.test/t/c/") == 3  # the sale link twice, the blog once
    assert "shop.example.com/sale" not in html and "blog.example.com" not in html
    for kept in ('href="mailto:help@example.com"', 'href="#top"',
                 'href="https://shop.example.com/private"', "https://shop.example.com/u?id=ann",
                 'href="https://herald.test/u/abc.def"'):  # fmt: skip
        assert kept in html
    assert html.endswith('.gif" width="1" height="1" alt="">')
    assert html.count("/t/o/") == 1
    # a second delivery reuses the stored links; nothing new is stored
    other = _delivery(campaign, "bob")
    assert _sent_html(campaign, other).count("/t/c/") == 3
    assert CampaignLink.objects.for_workspace(workspace).filter(campaign=campaign).count() == 2


def test_tracking_off_or_no_html_changes_nothing(workspace):
    campaign = _campaign(workspace, tracking_on=False)
    delivery = _delivery(campaign)
    rendered = compile_content("email", campaign.content).render(person_context(delivery.person))
    assert tracking.email_html(campaign, rendered["html"], delivery.pk) == rendered["html"]
    assert not CampaignLink.objects.for_workspace(workspace).exists()
    on = _campaign(workspace)
    assert tracking.email_html(on, "", delivery.pk) == ""
    assert tracking.push_open_url(campaign, delivery.pk) is None


def test_forged_or_truncated_tokens_404_and_record_nothing(client, workspace, redis_lists):
    campaign = _campaign(workspace)
    delivery = _delivery(campaign)
    _sent_html(campaign, delivery)
    good_open = tracking.make_token(workspace.pk, campaign.pk, delivery.pk)
    good_click = tracking.make_token(workspace.pk, campaign.pk, delivery.pk, 0)
    bad = [
        f"/t/o/{good_open[:-3]}.gif",
        f"/t/o/{good_open}x.gif",
        "/t/o/garbage.gif",
        f"/t/o/{good_click}.gif",  # a click token is no open token
        f"/t/c/{good_click[:-1]}",
        f"/t/c/{good_open}",
        "/t/c/" + "a" * 500,
        # another delivery id under the same signature
        f"/t/c/{good_click.replace(good_click.split('-')[2], 'zz', 1)}",
    ]
    for path in bad:
        assert client.get(path).status_code == 404, path
    assert redis_lists.llen(tracking.HITS) == 0


def test_a_click_redirects_only_to_the_link_stored_for_it(client, workspace, redis_lists):
    campaign = _campaign(workspace)
    delivery = _delivery(campaign)
    _sent_html(campaign, delivery)
    url = tracking.click_url(campaign, delivery.pk, 1)
    response = client.get(_path(url) + "?url=https://evil.example.com/", HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 302
    assert response["Location"] == "https://blog.example.com/"
    # a well-signed token for a link the campaign does not have: 404, nothing queued
    assert client.get(_path(tracking.click_url(campaign, delivery.pk, 7))).status_code == 404
    # nor another campaign's link under this campaign's id
    other = _campaign(workspace, html='<a href="https://other.example.com/">x</a>')
    _sent_html(other, _delivery(other, "bob"))
    forged = tracking.click_url(campaign, delivery.pk, 0)
    assert client.get(_path(forged)).status_code == 302
    assert client.get(_path(forged))["Location"] == "https://shop.example.com/sale?a=1&b=2"
    assert redis_lists.llen(tracking.HITS) == 3


def test_first_open_kept_once_per_person_while_counts_grow(client, workspace):
    campaign = _campaign(workspace)
    delivery = _delivery(campaign)
    pixel = tracking.open_url(campaign, delivery.pk)
    first, second, third = (SENT + timedelta(minutes=m) for m in (5, 30, 90))
    response = _hit(client, pixel, at=first)
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert response.content == tracking.PIXEL and "no-store" in response["Cache-Control"]
    _hit(client, pixel, at=second)
    # the hot path wrote nothing to the ledger
    assert _fresh(delivery).open_count == 0 and delivery.opened_at is None
    assert _flush() == 2
    delivery = _fresh(delivery)
    assert (delivery.opened_at, delivery.last_opened_at, delivery.open_count) == (
        first, second, 2)  # fmt: skip
    _hit(client, pixel, at=third)
    _flush()
    delivery = _fresh(delivery)
    assert (delivery.opened_at, delivery.last_opened_at, delivery.open_count) == (
        first, third, 3)  # fmt: skip
    assert campaign_stats(campaign)["opened"] == 1


def test_apple_privacy_protection_and_proxy_prefetches_are_machine_opens(client, workspace):
    campaign = _campaign(workspace)
    ann, bob, cy = (_delivery(campaign, x) for x in ("ann", "bob", "cy"))
    _hit(client, tracking.open_url(campaign, ann.pk), ua=MPP, at=SENT + timedelta(seconds=3))
    gmail = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    _hit(client, tracking.open_url(campaign, bob.pk), ua=gmail, at=SENT + timedelta(seconds=2))
    _hit(client, tracking.open_url(campaign, cy.pk), ua=gmail, at=SENT + timedelta(hours=2))
    _flush()
    ann, bob, cy = _fresh(ann), _fresh(bob), _fresh(cy)
    assert (ann.opened_at, ann.machine_open_count, ann.machine_opened_at) == (
        None, 1, SENT + timedelta(seconds=3))  # fmt: skip
    assert (bob.opened_at, bob.machine_open_count) == (None, 1)  # a prefetch at delivery
    assert (cy.opened_at, cy.open_count) == (SENT + timedelta(hours=2), 1)  # the person
    assert campaign_stats(campaign)["opened"] == 1
    engagement = campaign_engagement(campaign)
    assert engagement["machine_opened"] == 2 and engagement["machine_opens"] == 2
    assert engagement["open_rate"] == pytest.approx(33.3)


def test_link_scanners_are_machine_clicks(client, workspace):
    campaign = _campaign(workspace)
    early, burst, agent, person = (_delivery(campaign, x) for x in ("e", "b", "a", "p"))
    sale, blog = 0, 1
    _sent_html(campaign, early)
    at = SENT + timedelta(minutes=10)
    # a click before any open, seconds after the send
    _hit(client, tracking.click_url(campaign, early.pk, sale), at=SENT + timedelta(seconds=4))
    # every link of the message within a second, long after the send
    _hit(client, tracking.click_url(campaign, burst.pk, sale), at=at)
    _hit(client, tracking.click_url(campaign, burst.pk, blog), at=at + timedelta(seconds=1))
    # a security gateway's user agent
    _hit(client, tracking.click_url(campaign, agent.pk, blog), ua="Barracuda Sentinel (EE)",
         at=at)  # fmt: skip
    # a person: opens, then clicks the sale link twice, a minute apart
    _hit(client, tracking.open_url(campaign, person.pk), at=at)
    _hit(client, tracking.click_url(campaign, person.pk, sale), at=at + timedelta(seconds=20))
    _hit(client, tracking.click_url(campaign, person.pk, sale), at=at + timedelta(seconds=80))
    _flush()
    for scanned in (early, burst, agent):
        scanned = _fresh(scanned)
        assert scanned.clicked_at is None and scanned.click_count == 0, scanned.person_id
        assert scanned.machine_click_count >= 1 and scanned.opened_at is None
    person = _fresh(person)
    assert (person.click_count, person.clicked_at, person.last_clicked_at) == (
        2, at + timedelta(seconds=20), at + timedelta(seconds=80))  # fmt: skip
    stats = campaign_stats(campaign)
    assert (stats["opened"], stats["clicked"]) == (1, 1)
    links = top_links(campaign)
    assert [(link.index, link.clicks, link.machine_clicks) for link in links] == [
        (sale, 2, 2), (blog, 0, 2)]  # fmt: skip


def test_a_click_counts_as_an_open_when_images_were_blocked(client, workspace):
    campaign = _campaign(workspace)
    delivery = _delivery(campaign)
    _sent_html(campaign, delivery)
    at = SENT + timedelta(hours=1)
    _hit(client, tracking.click_url(campaign, delivery.pk, 1), at=at)
    _flush()
    delivery = _fresh(delivery)
    assert (delivery.opened_at, delivery.clicked_at, delivery.open_count) == (at, at, 0)


def test_a_scanner_burst_split_across_flushes_is_seen_whole(client, workspace):
    """A flush applies only hits older than SCAN_SECONDS and reads the newer ones as
    context, so a burst that straddles two flushes is still one burst."""
    campaign = _campaign(workspace)
    delivery = _delivery(campaign)
    _sent_html(campaign, delivery)
    at = SENT + timedelta(hours=1)
    _hit(client, tracking.click_url(campaign, delivery.pk, 0), at=at)
    _hit(client, tracking.click_url(campaign, delivery.pk, 1), at=at + timedelta(seconds=2))
    # the first flush runs between the two: only the first is due; the second is context
    assert _flush(now=at + timedelta(seconds=tracking.SCAN_SECONDS + 1)) == 1
    assert _fresh(delivery).machine_click_count == 1 and delivery.click_count == 0
    assert _flush() == 1
    delivery = _fresh(delivery)
    assert (delivery.machine_click_count, delivery.click_count, delivery.clicked_at) == (2, 0, None)


def test_push_opens_reported_by_the_app_are_human(client, workspace):
    campaign = _campaign(workspace, channel="push")
    delivery = _delivery(campaign)
    url = tracking.push_open_url(campaign, delivery.pk)
    assert url.startswith("https://herald.test/t/o/")
    assert _hit(client, url, ua="okhttp/4.12.0", at=SENT + timedelta(seconds=1)).status_code == 200
    _flush()
    assert _fresh(delivery).open_count == 1 and delivery.opened_at == SENT + timedelta(seconds=1)


def test_flush_goes_in_batches_and_a_crash_loses_nothing(client, workspace, redis_lists):
    campaign = _campaign(workspace)
    deliveries = [_delivery(campaign, f"p{i}") for i in range(6)]
    at = SENT + timedelta(hours=1)
    for d in deliveries:
        for _ in range(2):
            _hit(client, tracking.open_url(campaign, d.pk), at=at)
    assert redis_lists.llen(tracking.HITS) == 12
    now = SENT + timedelta(days=1)
    # a worker takes a batch, then dies before applying it
    seq, taken, _ = tracking.take_batch(redis_lists, now=now, batch=5)
    assert len(taken) == 5 and redis_lists.llen(tracking.HITS) == 7
    # another takes the next, applies it and dies before deleting it (after the commit)
    assert tracking.flush(now=now, batch=5, max_batches=1) == 5  # the dead one's first
    seq2, taken2, _ = tracking.take_batch(redis_lists, now=now, batch=5)
    tracking.apply_batch(seq2, taken2)
    assert seq2 > seq
    # the next flush applies the unfinished batch again (no effect: applied) and the rest
    assert tracking.flush(now=now, batch=5) == 7
    assert redis_lists.llen(tracking.HITS) == 0 and not redis_lists.exists(tracking.PROCESSING)
    counts = Delivery.objects.for_workspace(workspace).filter(campaign=campaign).values_list(
        "open_count", flat=True)  # fmt: skip
    assert sorted(counts) == [2] * 6


def test_a_batch_taken_by_a_worker_that_died_is_applied_by_the_next_flush(client, workspace,
                                                                          redis_lists):  # fmt: skip
    campaign = _campaign(workspace)
    delivery = _delivery(campaign)
    _hit(client, tracking.open_url(campaign, delivery.pk), at=SENT + timedelta(hours=1))
    tracking.take_batch(redis_lists, now=SENT + timedelta(days=1))  # then killed
    assert redis_lists.llen(tracking.HITS) == 0 and redis_lists.llen(tracking.PROCESSING) == 1
    assert _fresh(delivery).open_count == 0
    _flush()
    assert _fresh(delivery).open_count == 1
    _flush()
    assert _fresh(delivery).open_count == 1


def test_hits_newer_than_the_scan_window_wait_for_the_next_flush(client, workspace):
    campaign = _campaign(workspace)
    delivery = _delivery(campaign)
    at = SENT + timedelta(hours=1)
    _hit(client, tracking.open_url(campaign, delivery.pk), at=at)
    assert _flush(now=at + timedelta(seconds=1)) == 0
    assert _flush(now=at + timedelta(seconds=tracking.SCAN_SECONDS)) == 1


def test_with_redis_down_the_links_still_answer(client, workspace, settings, caplog):
    campaign = _campaign(workspace)
    delivery = _delivery(campaign)
    _sent_html(campaign, delivery)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    tracking._client = None
    started = time.monotonic()
    assert client.get(_path(tracking.open_url(campaign, delivery.pk))).status_code == 200
    response = client.get(_path(tracking.click_url(campaign, delivery.pk, 0)))
    assert response.status_code == 302 and response["Location"].startswith("https://shop.")
    assert time.monotonic() - started < 2
    assert "Redis" in caplog.text


def test_the_opened_and_clicked_conditions_read_human_opens_only(client, workspace):
    campaign = _campaign(workspace)
    ann, bob = _delivery(campaign, "ann"), _delivery(campaign, "bob")
    _sent_html(campaign, ann)
    at = SENT + timedelta(hours=1)
    _hit(client, tracking.open_url(campaign, ann.pk), at=at)
    _hit(client, tracking.open_url(campaign, bob.pk), ua=MPP, at=at)
    _hit(client, tracking.click_url(campaign, bob.pk, 0), ua="Mimecast URL scanner", at=at)
    _flush()

    def matching(rules):
        tree = parse_rules(rules, workspace=workspace)
        people = Person.objects.for_workspace(workspace).filter(
            compile_rules(tree, workspace=workspace, now=SENT + timedelta(days=1))
        )
        return set(people.values_list("external_id", flat=True))

    assert matching({"message": {"campaign": campaign.pk}, "op": "opened"}) == {"ann"}
    assert matching({"message": {"campaign": campaign.pk}, "op": "clicked"}) == set()


def test_the_campaign_page_shows_rates_machine_opens_and_top_links(client, marketer, workspace):
    campaign = _campaign(workspace)
    ann, bob = _delivery(campaign, "ann"), _delivery(campaign, "bob")
    _sent_html(campaign, ann)
    at = SENT + timedelta(hours=1)
    _hit(client, tracking.open_url(campaign, ann.pk), at=at)
    _hit(client, tracking.click_url(campaign, ann.pk, 1), at=at + timedelta(seconds=30))
    _hit(client, tracking.open_url(campaign, bob.pk), ua=MPP, at=at)
    _flush()
    client.force_login(marketer)
    page = client.get(
        reverse("campaign_detail", kwargs={"campaign_id": campaign.pk})
    ).content.decode()
    assert 'data-rate="open">50.0%' in page and 'data-rate="click">50.0%' in page
    assert 'data-engagement="machine_opens">1<' in page
    assert 'id="top-links"' in page and 'data-link-clicks="1">1<' in page
    stats = campaign_stats(campaign)
    assert (stats["opened"], stats["clicked"], stats["sent"]) == (1, 1, 2)


@pytest.mark.parametrize("tracking_on", [True, False])
def test_dispatch_sends_tracked_links_and_the_pixel_unless_off(workspace, tracking_on):
    """End to end through the dispatch and the Sandbox: what the person receives."""
    from accounts.audit import Actor
    from campaigns.dispatch.send import dispatch
    from campaigns.services import campaign_create, campaign_launch, campaign_launch_run
    from channels.models import SandboxMessage
    from channels.services import provider_set

    actor = Actor.of_system("tests")
    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={},
                 secrets={}, actor=actor)  # fmt: skip
    PersonFactory(workspace=workspace, external_id="ann", email="ann@example.com")
    campaign = campaign_create(workspace=workspace, name="Tracked", channel="email",
                               content={"subject": "Hi", "text": "Hi", "html": HTML},
                               everyone=True, actor=actor)  # fmt: skip
    Campaign.objects.filter(pk=campaign.pk).update(tracking=tracking_on)
    campaign.refresh_from_db()
    launch = campaign_launch(campaign=campaign, actor=actor).launches.get()
    campaign_launch_run(launch_id=launch.pk)
    dispatch(campaign.pk)
    html = SandboxMessage.objects.for_workspace(workspace).get().html
    assert ("https://herald.test/t/c/" in html) is tracking_on
    assert ("https://herald.test/t/o/" in html) is tracking_on
    assert ('href="https://blog.example.com/"' in html) is not tracking_on
    assert 'href="mailto:help@example.com"' in html
