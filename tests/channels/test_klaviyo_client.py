"""channels/klaviyo.py against the local fake of Klaviyo (tests/channels/klaviyo_fake.py),
both on one VirtualClock: the client's pacing, Retry-After waits and backoff take no real
time, and the fake's rate windows see exactly the time the client does."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest

from channels.klaviyo import (
    AUTH_MESSAGE,
    REVISION,
    KlaviyoAuthError,
    KlaviyoClient,
    KlaviyoError,
    KlaviyoRateLimited,
    Profile,
    RateLimiter,
    retry_after,
)
from tests.channels.conftest import free_port
from tests.channels.klaviyo_fake import API_KEY, REVISIONS, FakeKlaviyo, VirtualClock, serving

T0 = datetime(2026, 3, 1, tzinfo=UTC)
PROFILES_PATH = "/api/segments/S00001/profiles"


@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture(scope="module")
def stage():
    """One server for the module (stopping one takes half a second); each test puts its
    own fake on it."""
    stage = SimpleNamespace(fake=None)
    with serving(lambda request: stage.fake.handle(request)) as base:
        stage.url = base
        yield stage


@pytest.fixture
def fake(stage, clock):
    stage.fake = FakeKlaviyo(clock=clock)
    return stage.fake


@pytest.fixture
def url(stage, fake):
    return stage.url


@pytest.fixture
def connect(url, clock):
    """A KlaviyoClient on the fake and the shared clock, closed after the test."""
    clients = []

    def make(**options) -> KlaviyoClient:
        options = {
            "base_url": url,
            "allow_private": True,
            "clock": clock,
            "sleep": clock.sleep,
            **options,
        }
        client = KlaviyoClient(options.pop("api_key", API_KEY), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def segment_of(fake: FakeKlaviyo, size: int) -> list[str]:
    """Segment S00001 with `size` members, joined a second apart from T0."""
    group_id = fake.add_group("segment", "Newsletter")
    assert group_id == "S00001"
    ids = []
    for n in range(size):
        profile_id = fake.add_profile(email=f"p{n}@example.com", first_name=f"P{n}")
        fake.join("segment", group_id, profile_id, T0 + timedelta(seconds=n))
        ids.append(profile_id)
    return ids


def greedy_finish(requests: int, *, burst: int, per_minute: int) -> float:
    """When the last of `requests` can start at the earliest: at most `burst` in any 1 s
    and `per_minute` in any 60 s (the fake's windows), with answers taking no time."""
    starts: list[float] = []
    for i in range(requests):
        t = starts[-1] if starts else 0.0
        if i >= burst:
            t = max(t, starts[i - burst] + 1.0)
        if i >= per_minute:
            t = max(t, starts[i - per_minute] + 60.0)
        starts.append(t)
    return starts[-1]


# --- reading -------------------------------------------------------------------------


def test_lists_and_segments_are_paged_to_the_last_page(fake, connect):
    for n in range(23):
        fake.add_group("list", f"List {n}")
    for n in range(12):
        fake.add_group("segment", f"Segment {n}")
    klaviyo = connect()

    lists = list(klaviyo.lists())
    segments = list(klaviyo.segments())

    assert [g.name for g in lists] == [f"List {n}" for n in range(23)]
    assert [g.name for g in segments] == [f"Segment {n}" for n in range(12)]
    assert {g.kind for g in lists} == {"list"} and {g.kind for g in segments} == {"segment"}
    assert len({g.id for g in lists + segments}) == 35
    assert lists[1].created == datetime(2026, 1, 2, tzinfo=UTC) == lists[1].updated
    assert klaviyo.requests_made == 3 + 2  # 10 a page: 10+10+3 lists, 10+2 segments
    assert [s.path for s in fake.log] == ["/api/lists"] * 3 + ["/api/segments"] * 2
    assert all(s.status == 200 and "page[size]" not in s.args for s in fake.log)


def test_profiles_are_paged_fully_with_their_identifiers(fake, connect):
    ids = segment_of(fake, 250)
    phone_only = fake.add_profile(phone_number="+447700900123", last_name="Okafor")
    external = fake.add_profile(external_id="crm-77", email="")
    list_id = fake.add_group("list", "VIP")
    for profile_id in (phone_only, external):
        fake.join("list", list_id, profile_id, T0)
    klaviyo = connect()

    members = list(klaviyo.profiles("segment", "S00001"))
    vip = list(klaviyo.profiles("list", list_id))

    assert [p.id for p in members] == ids  # all of them, once each, in Klaviyo's order
    assert members[7] == Profile(
        id=ids[7],
        email="p7@example.com",
        phone_number=None,
        external_id=None,
        first_name="P7",
        last_name=None,
        joined_group_at=T0 + timedelta(seconds=7),
    )
    assert (vip[0].phone_number, vip[0].last_name, vip[0].email) == (
        "+447700900123",
        "Okafor",
        None,
    )
    assert (vip[1].external_id, vip[1].email) == ("crm-77", None)  # "" is no address
    profile_pages = [s for s in fake.log if s.path == PROFILES_PATH]
    assert len(profile_pages) == 3  # 100 + 100 + 50
    assert all(s.args["page[size]"] == "100" for s in profile_pages)
    assert profile_pages[0].args["fields[profile]"].split(",") == [
        "email",
        "phone_number",
        "external_id",
        "first_name",
        "last_name",
        "joined_group_at",
    ]

    fake.leave("segment", "S00001", ids[3])  # a full pull shows removals
    assert ids[3] not in {p.id for p in klaviyo.profiles("segment", "S00001")}


def test_joined_after_pulls_only_those_who_joined_since(fake, connect):
    ids = segment_of(fake, 10)
    klaviyo = connect()

    since = list(klaviyo.profiles("segment", "S00001", joined_after=T0 + timedelta(seconds=5.5)))

    # to the second: the one who joined at :05 comes again (a repeat is harmless)
    assert [p.id for p in since] == ids[5:]
    assert fake.log[-1].args["filter"] == "greater-or-equal(joined_group_at,2026-03-01T00:00:05Z)"
    with pytest.raises(ValueError, match="timezone-aware"):
        next(klaviyo.profiles("segment", "S00001", joined_after=datetime(2026, 3, 1)))
    with pytest.raises(ValueError):
        next(klaviyo.profiles("flow", "S00001"))


def test_the_client_speaks_klaviyos_headers(fake, connect):
    fake.add_group("list", "Newsletter")
    list(connect().lists())

    assert REVISION in REVISIONS  # a revision the fake (and Klaviyo) still answers
    assert fake.log[0].status == 200
    assert fake.log[0].headers == {"Accept": "application/vnd.api+json", "revision": REVISION}


@pytest.mark.parametrize(
    ("path", "headers", "status", "code", "said"),
    [
        ("/api/lists", {"Authorization": ""}, 401, "not_authenticated", "private key"),
        ("/api/lists", {"Authorization": "Klaviyo-API-Key pk_x"}, 401, "authentication_failed", ""),
        ("/api/lists", {"revision": ""}, 400, "invalid", "revision"),
        ("/api/lists", {"revision": "2024-10-15"}, 400, "invalid", "retired"),
        ("/api/lists", {"revision": "2026-10-16"}, 400, "invalid", "not a valid revision"),
        ("/api/lists", {"Accept": "text/html"}, 406, "not_acceptable", "Accept"),
        ("/api/lists?page[size]=11", {}, 400, "invalid", "between 1 and 10"),
        ("/api/lists?page_size=10", {}, 400, "invalid", "page_size"),
        (PROFILES_PATH + "?page[size]=101", {}, 400, "invalid", "between 1 and 100"),
        (PROFILES_PATH + "?fields[profile]=emails", {}, 400, "invalid", "emails"),
        (PROFILES_PATH + "?filter=greater-than(updated,2026-01-01)", {}, 400, "invalid", "updated"),
        (PROFILES_PATH + "?filter=after(joined_group_at,2026-01-01)", {}, 400, "invalid", "after"),
        (PROFILES_PATH + "?page[cursor]=bm9wZQ", {}, 400, "invalid", "cursor"),
        ("/api/segments/S99999/profiles", {}, 404, "not_found", "S99999"),
    ],
)
def test_the_fake_refuses_what_klaviyo_refuses(fake, url, path, headers, status, code, said):
    segment_of(fake, 1)
    sent = {
        "Authorization": f"Klaviyo-API-Key {API_KEY}",
        "revision": REVISION,
        "Accept": "application/vnd.api+json",
    }
    sent.update(headers)
    answer = httpx.get(url + path, headers={k: v for k, v in sent.items() if v})

    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/vnd.api+json"
    (error,) = answer.json()["errors"]
    assert set(error) == {"id", "status", "code", "title", "detail", "source"}
    assert (error["status"], error["code"]) == (status, code)
    assert said in error["detail"]


def test_a_wrong_key_raises_an_auth_error_at_once(connect):
    klaviyo = connect(api_key="pk_" + "0" * 34)

    with pytest.raises(KlaviyoAuthError) as raised:
        list(klaviyo.lists())

    assert str(raised.value).startswith(AUTH_MESSAGE)
    assert "401" in str(raised.value) and "Incorrect authentication credentials" in str(
        raised.value
    )
    assert (raised.value.status, raised.value.temporary) == (401, False)
    assert klaviyo.requests_made == 1


def test_a_key_without_segments_read_raises_an_auth_error(fake, connect):
    fake.scopes = {"lists:read", "profiles:read"}
    fake.add_group("list", "Newsletter")
    klaviyo = connect()

    assert len(list(klaviyo.lists())) == 1
    with pytest.raises(KlaviyoAuthError, match="403") as raised:
        list(klaviyo.segments())
    assert raised.value.path == "/api/segments"


# --- rate limits -----------------------------------------------------------------------


def test_a_429_is_waited_out_and_the_pull_goes_on_with_nothing_lost(fake, connect, clock):
    fake.burst, fake.per_minute = 4, 12
    ids = segment_of(fake, 1500)
    # a client that does not know the account's limits (another integration shares them)
    klaviyo = connect(burst=1000, per_second=1000, per_minute=100_000)

    pulled = [p.id for p in klaviyo.profiles("segment", "S00001")]

    assert pulled == ids  # every member once: no page lost, none read twice
    assert fake.throttled > 0 and klaviyo.rate_limited == fake.throttled
    served = [s.args.get("page[cursor]") for s in fake.log if s.status == 200]
    assert len(served) == len(set(served)) == 15
    # the client's own limiter never waited: every sleep was a Retry-After, whole seconds
    assert len(clock.slept) == fake.throttled and all(s == int(s) >= 1 for s in clock.slept)
    assert klaviyo.waited_seconds == sum(clock.slept)
    assert klaviyo.requests_made == 15 + fake.throttled


@pytest.mark.parametrize(("style", "expected"), [("seconds", 2), ("date", 2), ("none", 1)])
def test_retry_after_in_seconds_as_a_date_or_missing(fake, connect, clock, style, expected):
    fake.retry_after, fake.forced_retry_after = style, 2
    ids = segment_of(fake, 250)
    fake.fail(at=2, kind="429")
    klaviyo = connect()

    assert [p.id for p in klaviyo.profiles("segment", "S00001")] == ids
    (slept,) = clock.slept
    # an HTTP date is to the second, against the server's Date: up to a second later
    assert expected <= slept <= expected + (1 if style == "date" else 0)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7),
        ({"Retry-After": " 2.5 "}, 2.5),
        (
            {
                "Retry-After": "Thu, 03 Dec 2026 08:00:30 GMT",
                "Date": "Thu, 03 Dec 2026 08:00:00 GMT",
            },
            30,
        ),
        (
            {
                "Retry-After": "Thu, 03 Dec 2026 07:59:00 GMT",
                "Date": "Thu, 03 Dec 2026 08:00:00 GMT",
            },
            0,
        ),
        ({}, 1),
        ({"Retry-After": "soon"}, 1),
        ({"Retry-After": "-5"}, 0),
        ({"Retry-After": "nan"}, 1),
    ],
)
def test_retry_after_is_read_as_klaviyo_and_rfc_9110_write_it(headers, seconds):
    assert retry_after(httpx.Headers(headers)) == seconds


def test_throttling_past_the_wait_cap_raises_a_temporary_error(fake, connect):
    segment_of(fake, 10)
    fake.forced_retry_after = 30
    fake.fail(at=1, kind="429", times=100)
    klaviyo = connect(max_throttle_wait=100)

    with pytest.raises(KlaviyoRateLimited) as raised:
        list(klaviyo.profiles("segment", "S00001"))

    assert raised.value.temporary and raised.value.path == PROFILES_PATH
    assert klaviyo.requests_made == 4  # waited 30 s three times; a fourth would pass 100 s
    assert klaviyo.waited_seconds == 90


def test_the_limiter_keeps_the_client_under_the_fakes_limits(fake, connect, clock):
    fake.burst, fake.per_minute = 5, 30
    ids = segment_of(fake, 4000)
    klaviyo = connect(burst=5, per_second=5, per_minute=30)
    started = clock.now

    assert len(list(klaviyo.segments())) == 1
    assert [p.id for p in klaviyo.profiles("segment", "S00001")] == ids

    assert fake.throttled == 0 and klaviyo.rate_limited == 0
    assert klaviyo.requests_made == fake.requests == 41
    # and no slower than the limits make it: 30 in the first 6 s, the rest from 60 s on
    assert clock.now - started == pytest.approx(greedy_finish(41, burst=5, per_minute=30), abs=0.2)


def test_a_client_looser_than_the_account_is_throttled_by_the_fake(fake, connect):
    """The control for the test above: the fake does count, so "no 429" means something."""
    fake.burst, fake.per_minute = 5, 30
    ids = segment_of(fake, 4000)
    klaviyo = connect(burst=5, per_second=5, per_minute=45)

    assert [p.id for p in klaviyo.profiles("segment", "S00001")] == ids
    assert fake.throttled > 0 and klaviyo.rate_limited == fake.throttled


def test_the_limiter_holds_both_windows_and_wastes_neither():
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)  # 75 a second, 750 a minute
    stamps = []
    for _ in range(2000):
        limiter.acquire()
        limiter.answered()
        stamps.append(clock.now)

    assert all(later - earlier >= 1.0 for earlier, later in zip(stamps, stamps[75:]))
    assert all(later - earlier >= 60.0 for earlier, later in zip(stamps, stamps[750:]))
    assert stamps[-1] == pytest.approx(greedy_finish(2000, burst=75, per_minute=750), abs=0.5)


def test_the_bucket_spaces_requests_once_its_burst_is_spent():
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter(burst=10, per_second=2, per_minute=1000, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(16):
        limiter.acquire()
        limiter.answered()
        stamps.append(clock.now)

    # ten at once; none more in that second (the 1 s window); then two a second, with
    # the two tokens the bucket refilled meanwhile spent at once
    assert stamps[:10] == [0.0] * 10
    assert stamps[10:] == pytest.approx([1.0, 1.0, 1.5, 2.0, 2.5, 3.0], abs=0.01)


# --- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["503", "502"])
def test_5xx_mid_way_is_retried_with_backoff_and_the_pull_completes(fake, connect, clock, kind):
    ids = segment_of(fake, 350)
    fake.fail(at=3, kind=kind, times=5)
    klaviyo = connect(max_retries=5)

    assert [p.id for p in klaviyo.profiles("segment", "S00001")] == ids
    assert klaviyo.requests_made == 4 + 5
    assert clock.slept == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_5xx_past_max_retries_raises_naming_the_path(fake, connect):
    segment_of(fake, 350)
    fake.fail(at=3, kind="500", times=6)
    klaviyo = connect(max_retries=5)
    pulled = []

    with pytest.raises(KlaviyoError) as raised:
        pulled.extend(klaviyo.profiles("segment", "S00001"))

    assert len(pulled) == 200  # the first two pages came; the third never did
    assert (raised.value.status, raised.value.path, raised.value.temporary) == (
        500,
        PROFILES_PATH,
        True,
    )
    assert PROFILES_PATH in str(raised.value) and "A server error occurred" in str(raised.value)
    assert klaviyo.requests_made == 2 + 6


def test_malformed_json_raises_naming_the_path_without_retrying(fake, connect):
    segment_of(fake, 150)
    fake.fail(at=2, kind="malformed")
    klaviyo = connect()

    with pytest.raises(KlaviyoError, match=f"{PROFILES_PATH} is not JSON") as raised:
        list(klaviyo.profiles("segment", "S00001"))
    assert not raised.value.temporary and klaviyo.requests_made == 2


def test_a_body_not_in_json_api_shape_raises_naming_the_path(fake, connect):
    fake.fail(at=1, kind="not-jsonapi")

    with pytest.raises(KlaviyoError, match="/api/lists is not a JSON:API collection"):
        list(connect().lists())


def test_network_errors_are_retried_then_raised(connect, clock):
    klaviyo = connect(base_url=f"http://127.0.0.1:{free_port()}", max_retries=2)

    with pytest.raises(KlaviyoError, match="could not be reached for /api/lists") as raised:
        list(klaviyo.lists())
    assert raised.value.temporary and klaviyo.requests_made == 3
    assert clock.slept == [0.5, 1.0]


def test_a_private_host_is_refused_at_once(connect):
    klaviyo = connect(allow_private=False)

    with pytest.raises(KlaviyoError, match="private or reserved address") as raised:
        list(klaviyo.lists())
    assert not raised.value.temporary and klaviyo.requests_made == 1


def test_a_next_link_to_another_host_is_not_followed(fake, connect):
    segment_of(fake, 150)
    fake.next_base = "https://a.klaviyo.example"
    klaviyo = connect()

    with pytest.raises(KlaviyoError, match="another host"):
        list(klaviyo.profiles("segment", "S00001"))
    assert klaviyo.requests_made == 1
