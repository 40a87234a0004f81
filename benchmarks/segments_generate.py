"""The segments benchmark data set: 1,000,000 people and 10,000,000 events, by COPY.

Issue: "A generator in benchmarks/ builds, with COPY, in minutes: 1,000,000 people with
about 10 custom attributes and 10,000,000 events over 180 days with 50 names (skewed),
across 3 workspaces, one holding 80%."

Prints ONE line:
    segments_generate people=1000000 events=10000000 workspaces=3 ... seconds=..

What it does:

1. (Re)creates the database herald_bench_segments and migrates it (--keep-existing
   leaves a complete one as it is and only prints its counts).
2. Three workspaces, "Big" / "Medium" / "Small" with 80 / 15 / 5 % of the rows, each with
   a catalogue of 10 custom attributes covering every type (AttributeDefinition).
3. Drops the secondary indexes and foreign keys of the bulk-loaded tables (their exact
   definitions are read from the catalogue first), then COPYs the people (skewed cities
   and countries, realistic emails, created_at over three years growing with the id,
   ~10% of each attribute missing) and the events: 50 names Zipf-skewed, 180 days, time
   ordered as a live table is, a skewed number per person (a quarter of people have none),
   small JSONB properties. Python generates the rows while PostgreSQL parses them.
   The event catalogue (EventType) is counted while generating.
4. Tags with PersonTag and two audiences with members (one INSERT ... SELECT each per
   workspace), then recreates every index and foreign key from the saved definitions (the
   schema ends identical to the migrations'; the script checks it), then VACUUM ANALYZE
   (statistics, and the visibility map that index-only scans need), and marks the database
   complete (its comment) for --keep-existing and benchmarks/segments_suite.py.

Run:
    .venv/bin/python benchmarks/segments_generate.py                  # full scale
    .venv/bin/python benchmarks/segments_generate.py --keep-existing  # reuse a built one
    .venv/bin/python benchmarks/segments_generate.py --people 100000 --events 1000000
benchmarks/segments_suite.py times the segment compiler on it.
"""

import argparse
import bisect
import itertools
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from accounts.audit import Actor

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgres://root@127.0.0.1:5432"
DB_NAME = "herald_bench_segments"
DSN = f"{PG_SERVER}/{DB_NAME}"
DAYS = 180
COMPLETE = "herald segments benchmark data: complete"  # the database's comment once built
WORKSPACES = [("Big", "big", 0.80), ("Medium", "medium", 0.15), ("Small", "small", 0.05)]
# The tables loaded in bulk: their secondary indexes and foreign keys are dropped around
# the load and recreated from their saved definitions.
BULK_TABLES = ["people_person", "people_event", "people_persontag", "audiences_audiencemember"]

FIRST_NAMES = (
    "Olivia Liam Emma Noah Amelia Oliver Sophia Elijah Charlotte James Ava Lucas Mia Mateo "
    "Isabella Leo Sofia Hugo Chloé Louis Léa Gabriel Aisha Omar Yuki Hana Wei Mei Priya Arjun "
    "Fatima Ali Giulia Marco Sven Ingrid Zoé Tomás Lucía Kofi Amara Nia Jonas Emil Anna Paul"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Martin Bernard Dubois Thomas "
    "Robert Richard Petit Durand Leroy Moreau Müller Schmidt Schneider Fischer Weber Rossi "
    "Russo Ferrari Esposito Bianchi Romano Tanaka Suzuki Sato Kim Lee Park Chen Wang Li "
    "Singh Patel Kumar Silva Santos Oliveira Nowak Kowalski Jansen Andersson O'Brien Murphy"
).split()
CITIES = [  # (city, country, weight): a long tail behind a few big cities
    ("London", "United Kingdom", 150),
    ("Paris", "France", 90),
    ("Berlin", "Germany", 60),
    ("Madrid", "Spain", 45),
    ("Manchester", "United Kingdom", 35),
    ("Amsterdam", "Netherlands", 30),
    ("Lyon", "France", 25),
    ("Milan", "Italy", 25),
    ("Barcelona", "Spain", 25),
    ("Munich", "Germany", 20),
    ("Dublin", "Ireland", 18),
    ("Lisbon", "Portugal", 15),
    ("Brussels", "Belgium", 14),
    ("Vienna", "Austria", 12),
    ("Copenhagen", "Denmark", 10),
    ("Stockholm", "Sweden", 10),
    ("Edinburgh", "United Kingdom", 9),
    ("Zurich", "Switzerland", 8),
    ("Prague", "Czechia", 8),
    ("Warsaw", "Poland", 8),
] + [(f"Town {n}", ["France", "Germany", "Spain", "Italy"][n % 4], 1) for n in range(200)]
DOMAINS = [("gmail.com", 40), ("outlook.com", 15), ("yahoo.com", 10), ("icloud.com", 8)] + [
    (f"company{n}.example", 1) for n in range(30)
]
STREETS = ["High Street", "Station Road", "Rue de la Paix", "Hauptstraße", "Calle Mayor"]
ATTRIBUTES = {  # the catalogue of every workspace: key -> type (every type)
    "plan": "string",
    "ltv": "number",
    "orders": "number",
    "newsletter": "boolean",
    "signup_date": "date",
    "last_seen": "datetime",
    "langs": "list",
    "app_version": "string",
    "referrer": "string",
    "birth_date": "date",
}
LANGS = ["en", "fr", "de", "es", "it", "nl", "pt", "pl"]
BIRTH_DATES = [(date(1950, 1, 1) + timedelta(days=n)).isoformat() for n in range(365 * 55)]
CATEGORIES = ["shoes", "outdoor", "books", "garden", "kitchen", "toys", "beauty", "sport"]
# 50 event names, most frequent first; weight 1 / rank^1.1 (Zipf).
EVENT_NAMES = (
    "page_view app_open screen_view session_start search product_view notification_open "
    "add_to_cart email_open purchase login scroll video_play share wishlist_add email_click "
    "checkout_start review_read coupon_view cart_view filter_apply sort_apply signup "
    "profile_update push_open banner_click category_view store_locator_open rating_submit "
    "review_submit referral_sent address_add payment_method_add order_tracking_view "
    "return_request support_chat faq_view app_update logout newsletter_subscribe "
    "newsletter_unsubscribe gift_card_view loyalty_view points_redeem survey_start "
    "survey_complete subscription_start subscription_cancel trial_start refund"
).split()
TAGS = [  # (name, share of people)
    ("VIP", 0.05),
    ("Newsletter", 0.08),
    ("Beta tester", 0.02),
    ("Churn risk", 0.03),
    ("Wholesale", 0.01),
    ("Event 2026", 0.01),
    ("Partner", 0.005),
    ("Press", 0.005),
]
AUDIENCES = [("Spring sale", 0.10), ("Loyalty club", 0.03)]  # (name, share of people)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def configure_django() -> None:
    os.environ.update(
        DATABASE_URL=DSN,
        DEBUG="0",
        PROVIDER_SECRET_KEYS="dGVzdC1vbmx5LXByb3ZpZGVyLXNlY3JldC1rZXktMzI=",
        SECRET_KEY="bench-only-secret-key-" + "k" * 50,
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        STATIC_MANIFEST="0",
        STATIC_ROOT=tempfile.gettempdir(),
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def admin_execute(*statements: str) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def database_state() -> str | None:
    """None (no database), "complete" (a finished build) or "partial"."""
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [DB_NAME],
        ).fetchone()
    if row is None:
        return None
    return "complete" if row[0] == COMPLETE else "partial"


def counts(conn) -> dict[str, int]:
    tables = {
        "workspaces": "accounts_workspace",
        "people": "people_person",
        "events": "people_event",
        "event_types": "people_eventtype",
        "person_tags": "people_persontag",
        "audience_members": "audiences_audiencemember",
    }
    return {
        key: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for key, table in tables.items()
    }


# --- Schema around the bulk load ------------------------------------------------------------


def schema_objects(conn) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(index name, table, CREATE INDEX) of the secondary indexes that back no constraint,
    and (constraint name, table, definition) of the foreign keys, of BULK_TABLES."""
    indexes = conn.execute(
        "SELECT i.relname, t.relname, pg_get_indexdef(i.oid) "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_class t ON t.oid = x.indrelid "
        "WHERE t.relname = ANY(%s) AND t.relnamespace = 'public'::regnamespace "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid) "
        "ORDER BY 2, 1",
        [BULK_TABLES],
    ).fetchall()
    foreign_keys = conn.execute(
        "SELECT c.conname, t.relname, pg_get_constraintdef(c.oid) "
        "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "WHERE t.relname = ANY(%s) AND t.relnamespace = 'public'::regnamespace "
        "AND c.contype = 'f' ORDER BY 2, 1",
        [BULK_TABLES],
    ).fetchall()
    return indexes, foreign_keys


def drop_schema_objects(conn, indexes, foreign_keys) -> None:
    for name, table, _ in foreign_keys:
        conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    for name, _, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')


def restore_schema_objects(conn, indexes, foreign_keys) -> None:
    # Big tables first, one index at a time with parallel workers and a roomy sort.
    conn.execute("SET maintenance_work_mem = '1GB'")
    for _, _, definition in indexes:
        began = time.perf_counter()
        conn.execute(definition)
        log(f"  {time.perf_counter() - began:5.1f} s  {definition[:110]}")
    for name, table, definition in foreign_keys:
        conn.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')


# --- Rows ------------------------------------------------------------------------------------


def copy_escape(text: str) -> str:
    """A value for COPY's text format (our values hold no tab or newline)."""
    return text.replace("\\", "\\\\")


def _cum(weights) -> list[float]:
    return list(itertools.accumulate(weights))


PLANS = (["free", "starter", "pro", "enterprise"], _cum([60, 20, 15, 5]))
LANG_COUNTS = ([0, 1, 2, 3], _cum([10, 60, 25, 5]))
MAJORS = ([3, 4, 5], _cum([20, 50, 30]))
REFERRERS = (
    ["google", "facebook", "instagram", "newsletter", "partner", "direct"],
    _cum([35, 15, 12, 10, 8, 20]),
)


def pick(rng: random.Random, choices) -> object:
    values, cum = choices
    return values[bisect.bisect(cum, rng.random() * cum[-1])]


def person_attributes(rng: random.Random, created: datetime, now: datetime) -> str:
    values = {
        "plan": pick(rng, PLANS),
        "ltv": round(rng.expovariate(1 / 150), 2),
        "orders": min(200, int(rng.expovariate(1 / 6))),
        "newsletter": rng.random() < 0.4,
        "signup_date": created.date().isoformat(),
        "last_seen": (now - timedelta(seconds=int(rng.expovariate(1 / (20 * 86400))))).isoformat(
            timespec="seconds"
        ),
        "langs": rng.sample(LANGS, pick(rng, LANG_COUNTS)),
        "app_version": f"{pick(rng, MAJORS)}.{rng.randrange(13)}.{rng.randrange(10)}",
        "referrer": pick(rng, REFERRERS),
        "birth_date": BIRTH_DATES[rng.randrange(len(BIRTH_DATES))],
    }
    # Not everyone has every attribute: ~10% of the values are missing.
    return json.dumps({k: v for k, v in values.items() if rng.random() > 0.1}, ensure_ascii=False)


def copy_people(conn, *, workspace_id: int, n: int, rng: random.Random, prefix: str, now) -> None:
    """`n` people of a workspace in one COPY, oldest first (ids grow with created_at)."""
    companies = [
        f"{rng.choice(LAST_NAMES)} {rng.choice(['Ltd', 'GmbH', 'SA', 'BV', 'Group', 'Labs'])} {i}"
        for i in range(max(10, n // 200))
    ]
    with conn.cursor() as cur:
        with cur.copy("COPY people_company (workspace_id, name, created_at) FROM STDIN") as copy:
            for name in companies:
                copy.write_row((workspace_id, name, now))
        company_ids = [
            row[0]
            for row in cur.execute(
                "SELECT id FROM people_company WHERE workspace_id = %s ORDER BY id", [workspace_id]
            )
        ]
        columns = (
            "workspace_id, external_id, email, phone, first_name, last_name, gender, country, "
            "city, address, company_id, attributes, created_at, updated_at"
        )
        city_weights = list(itertools.accumulate(w for _, _, w in CITIES))
        domain_weights = list(itertools.accumulate(w for _, w in DOMAINS))
        genders = ["female"] * 45 + ["male"] * 45 + [""] * 8 + ["non-binary"] * 2
        start = now - timedelta(days=3 * 365)
        step = (now - start) / n
        with cur.copy(f"COPY people_person ({columns}) FROM STDIN") as copy:
            lines = []
            for i in range(n):
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                city, country, _ = CITIES[
                    bisect.bisect(city_weights, rng.random() * city_weights[-1])
                ]
                created = start + step * i
                if rng.random() < 0.92:
                    domain = DOMAINS[
                        bisect.bisect(domain_weights, rng.random() * domain_weights[-1])
                    ][0]
                    email = f"{first}.{last}{i}@{domain}".lower().replace("'", "")
                else:
                    email = ""
                phone = f"+447{rng.randint(100000000, 999999999)}" if rng.random() < 0.6 else ""
                company = rng.choice(company_ids) if rng.random() < 0.6 else "\\N"
                stamp = created.isoformat()
                lines.append(
                    f"{workspace_id}\t{prefix}-{i:07d}\t{email}\t{phone}\t{first}\t{last}\t"
                    f"{rng.choice(genders)}\t{country}\t{city}\t{rng.randint(1, 250)} "
                    f"{rng.choice(STREETS)}\t{company}\t"
                    f"{copy_escape(person_attributes(rng, created, now))}\t{stamp}\t{stamp}\n"
                )
                if len(lines) == 5000:
                    copy.write("".join(lines))
                    lines = []
            copy.write("".join(lines))


def event_properties(rng: random.Random) -> dict[str, list[str]]:
    """A few hundred ready-made property documents per event name (small JSONB)."""
    platforms = ["ios", "android", "web"]

    def variants(make, k=300):
        return [copy_escape(json.dumps(make())) for _ in range(k)]

    out = {name: variants(lambda: {"platform": rng.choice(platforms)}, 3) for name in EVENT_NAMES}
    out["page_view"] = variants(lambda: {"path": f"/p/{rng.randint(1, 5000)}"})
    out["product_view"] = variants(
        lambda: {"product": rng.randint(1, 20000), "category": rng.choice(CATEGORIES)}
    )
    out["add_to_cart"] = out["product_view"]
    out["search"] = variants(lambda: {"query": rng.choice(CATEGORIES + LANGS)})
    out["purchase"] = variants(
        lambda: {
            "amount": round(rng.expovariate(1 / 60), 2),
            "currency": rng.choices(["EUR", "GBP", "USD"], [60, 30, 10])[0],
            "category": rng.choice(CATEGORIES),
        },
        2000,
    )
    return out


def copy_events(conn, *, workspace_id: int, person_ids: list[int], n: int, rng, now) -> dict:
    """`n` events of a workspace over DAYS days and today up to `now`, in time order (as a
    live table fills). Returns the event catalogue: {name: [count, first, last]}."""
    # A quarter of people sent nothing in the period; the others a long-tailed number.
    weights = [0.0 if rng.random() < 0.25 else rng.lognormvariate(0, 1.2) for _ in person_ids]
    person_cum = _cum(weights)
    name_cum = _cum(1 / (rank**1.1) for rank in range(1, 51))
    properties = event_properties(rng)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = midnight - timedelta(days=DAYS)
    today_seconds = max(1, int((now - midnight).total_seconds()))
    # Slightly more events on recent days (a growing product); today only up to now.
    day_weights = [1 + 0.5 * d / DAYS for d in range(DAYS)] + [1.5 * today_seconds / 86400]
    cum = _cum(day_weights)
    bounds = [round(n * c / cum[-1]) for c in cum]  # exactly n in all
    clock = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(86400)]
    catalogue: dict[str, list] = {}
    with conn.cursor() as cur:
        columns = "workspace_id, person_id, name, occurred_at, properties, received_at"
        with cur.copy(f"COPY people_event ({columns}) FROM STDIN") as copy:
            for d, (start, stop) in enumerate(zip([0, *bounds], bounds, strict=False)):
                k = stop - start
                span = today_seconds if d == DAYS else 86400
                date_text = (first_day + timedelta(days=d)).strftime("%Y-%m-%d ")
                stamps = [
                    date_text + clock[s] for s in sorted(rng.randrange(span) for _ in range(k))
                ]
                people = rng.choices(person_ids, cum_weights=person_cum, k=k)
                names = rng.choices(EVENT_NAMES, cum_weights=name_cum, k=k)
                lines = []
                for person, name, stamp in zip(people, names, stamps, strict=True):
                    variants = properties[name]
                    lines.append(
                        f"{workspace_id}\t{person}\t{name}\t{stamp}\t"
                        f"{variants[rng.randrange(len(variants))]}\t{stamp}\n"
                    )
                copy.write("".join(lines))
                # the catalogue: a dict keeps the last value given to a key
                firsts = dict(zip(reversed(names), reversed(stamps), strict=True))
                lasts = dict(zip(names, stamps, strict=True))
                for name, count in Counter(names).items():
                    entry = catalogue.setdefault(name, [0, firsts[name], None])
                    entry[0] += count
                    entry[2] = lasts[name]
    return catalogue


# --- Build -----------------------------------------------------------------------------------


def build(people: int, events: int) -> None:
    from django.core.management import call_command

    from accounts.models import User
    from accounts.services import workspace_create

    log(f"creating and migrating {DB_NAME}")
    call_command("migrate", verbosity=0)
    rng = random.Random(20261201)
    now = datetime.now(UTC)
    workspaces = []
    for name, prefix, _ in WORKSPACES:
        owner = User.objects.create_user(email=f"owner@{prefix}.test")
        workspaces.append(workspace_create(name=name, owner=owner, actor=Actor(system="benchmark")))

    with psycopg.connect(DSN, autocommit=True) as conn:
        indexes, foreign_keys = schema_objects(conn)
        drop_schema_objects(conn, indexes, foreign_keys)
        log(f"dropped {len(indexes)} indexes and {len(foreign_keys)} foreign keys for the load")

        for workspace, (_, prefix, share) in zip(workspaces, WORKSPACES, strict=True):
            conn.execute(
                "INSERT INTO people_attributedefinition "
                "(workspace_id, key, label, type, inferred, created_at, updated_at) "
                "SELECT %s, key, key, type, false, now(), now() "
                "FROM unnest(%s::text[], %s::text[]) AS a(key, type)",
                [workspace.pk, list(ATTRIBUTES), list(ATTRIBUTES.values())],
            )
            n_people, n_events = round(people * share), round(events * share)
            began = time.perf_counter()
            with conn.transaction():
                copy_people(
                    conn, workspace_id=workspace.pk, n=n_people, rng=rng, prefix=prefix, now=now
                )
            log(f"{workspace.name}: {n_people:,} people in {time.perf_counter() - began:.0f} s")
            person_ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM people_person WHERE workspace_id = %s ORDER BY id",
                    [workspace.pk],
                )
            ]
            began = time.perf_counter()
            with conn.transaction():
                catalogue = copy_events(
                    conn,
                    workspace_id=workspace.pk,
                    person_ids=person_ids,
                    n=n_events,
                    rng=rng,
                    now=now,
                )
                # The event catalogue (EventType), counted while generating.
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO people_eventtype "
                        "(workspace_id, name, count, first_seen, last_seen) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        [(workspace.pk, name, *entry) for name, entry in catalogue.items()],
                    )
            log(f"{workspace.name}: {n_events:,} events in {time.perf_counter() - began:.0f} s")

        began = time.perf_counter()
        for workspace in workspaces:
            fill_tags_and_audiences(conn, workspace.pk)
        log(f"tags and audiences in {time.perf_counter() - began:.0f} s")

        began = time.perf_counter()
        log("recreating indexes and foreign keys")
        restore_schema_objects(conn, indexes, foreign_keys)
        if schema_objects(conn) != (indexes, foreign_keys):
            raise SystemExit("the indexes or foreign keys differ from the migrations'")
        log(f"  indexes and foreign keys in {time.perf_counter() - began:.0f} s")

        began = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        log(f"VACUUM ANALYZE in {time.perf_counter() - began:.0f} s")
        conn.execute(f"COMMENT ON DATABASE \"{DB_NAME}\" IS '{COMPLETE}'")


def fill_tags_and_audiences(conn, workspace_id: int) -> None:
    """Tags and audiences, one INSERT ... SELECT each over the workspace's people: a person
    draws a number (a hash of the id) and ranges of it give each tag its share (VIP and
    Newsletter overlapping); each audience draws its own."""
    tag_ranges, low = [], 0.0
    for name, share in TAGS:
        tag_id = conn.execute(
            "INSERT INTO people_tag (workspace_id, name, created_at) VALUES (%s, %s, now()) "
            "RETURNING id",
            [workspace_id, name],
        ).fetchone()[0]
        tag_ranges.append((tag_id, low, low + share))
        low += share if name != "VIP" else share * 0.6
    conn.execute(
        "INSERT INTO people_persontag (workspace_id, person_id, tag_id, source, created_at) "
        "SELECT p.workspace_id, p.id, r.tag_id, 'import', p.created_at "
        "FROM (SELECT workspace_id, id, created_at, (hashint8(id) & 1048575) / 1048576.0 AS draw "
        "      FROM people_person WHERE workspace_id = %s) p "
        "JOIN unnest(%s::bigint[], %s::numeric[], %s::numeric[]) AS r(tag_id, low, high) "
        "  ON p.draw >= r.low AND p.draw < r.high",
        [workspace_id, *map(list, zip(*tag_ranges, strict=True))],
    )
    audiences = []
    for seed, (name, share) in enumerate(AUDIENCES, start=1):
        audience_id = conn.execute(
            "INSERT INTO audiences_targetaudience (workspace_id, name, people_count, created_at, "
            "updated_at) VALUES (%s, %s, 0, now(), now()) RETURNING id",
            [workspace_id, name],
        ).fetchone()[0]
        audiences.append((audience_id, seed * 7919, share))
    conn.execute(
        "INSERT INTO audiences_audiencemember (workspace_id, audience_id, person_id, source, "
        "added_at) SELECT p.workspace_id, a.id, p.id, 'import', now() FROM people_person p "
        "JOIN unnest(%s::bigint[], %s::bigint[], %s::numeric[]) AS a(id, seed, share) "
        "  ON (hashint8(p.id + a.seed) & 1048575) / 1048576.0 < a.share "
        "WHERE p.workspace_id = %s",
        [*map(list, zip(*audiences, strict=True)), workspace_id],
    )
    conn.execute(
        "UPDATE audiences_targetaudience a SET people_count = (SELECT count(*) FROM "
        "audiences_audiencemember m WHERE m.audience_id = a.id) WHERE a.workspace_id = %s",
        [workspace_id],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument(
        "--keep-existing", action="store_true", help="leave an existing database as it is"
    )
    args = parser.parse_args()

    began = time.perf_counter()
    if not (args.keep_existing and database_state() == "complete"):
        admin_execute(
            f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"'
        )
        configure_django()
        try:
            build(args.people, args.events)
        finally:
            from django.db import connections

            connections.close_all()
    with psycopg.connect(DSN) as conn:
        found = counts(conn)
    print(
        "segments_generate "
        + " ".join(f"{key}={value}" for key, value in found.items())
        + f" seconds={time.perf_counter() - began:.0f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
