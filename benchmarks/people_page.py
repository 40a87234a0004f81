"""The People page with 1,000,000 people: server time and query count.

Issue target: "People page with 1,000,000 people: the first page and a filtered page
(city and tag) each take <= 300 ms server time; the query count does not grow with the
rows."

Prints ONE line:
    people_page people=1000000 first=..ms filtered=..ms next=..ms search=..ms
    sorted=A/B/C ms queries=N (10k: N) target<=300ms
where N is the query count of a page, or of each page (first/filtered/next/search) when
they differ: the tag filter reads its tag first, one query more.

What it does:

1. (Re)creates the database herald_bench_people and migrates it. Workspace "Big" gets
   1,000,000 people and workspace "Small" 10,000, both by COPY: skewed cities, ~60% with
   one of 5,000 companies, 10 typed custom attributes in JSONB (with their catalogue),
   created_at growing with the id over three years. ~20% of people get tags (PersonTag
   with one INSERT ... SELECT, VIP on ~5%), then ANALYZE.
2. Signs in an ops member of each workspace (force_login) and, in this process through
   Django's test Client (the whole middleware stack and template), times GET /people/
   (first page), /people/?city=London&tags=VIP (filtered), the second keyset page
   (?after=<the first page's last id>), a search (?q=<an email>) and three sorted pages
   (sorted=: by name; the second page by email Z to A; VIP by city Z to A): the median of
   5 runs after 1 warm-up each. Queries are counted with CaptureQueriesContext.
3. Runs the same four pages on the 10,000-people workspace: the query counts must be the
   same (the script fails otherwise).
4. Drops the database (unless --keep; --reuse takes a kept one as it is).

Run:
    .venv/bin/python benchmarks/people_page.py             # full scale
    .venv/bin/python benchmarks/people_page.py --keep      # keep the database afterwards
    .venv/bin/python benchmarks/people_page.py --reuse     # time again on a kept database
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.types.json import Jsonb

from accounts.audit import Actor

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgres://root@127.0.0.1:5432"
DB_NAME = "herald_bench_people"
TARGET_MS = 300
RUNS = 5

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
# (city, country, weight): a long tail behind a few big cities, as real lists are.
CITIES = [
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
] + [(f"Town {n}", "France", 1) for n in range(200)]
DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "example.org"]
STREETS = ["High Street", "Station Road", "Rue de la Paix", "Hauptstraße", "Calle Mayor"]
TAGS = [  # (name, share of people)
    ("VIP", 0.05),
    ("Newsletter", 0.08),
    ("Beta tester", 0.02),
    ("Churn risk", 0.02),
    ("Wholesale", 0.01),
    ("Event 2026", 0.01),
    ("Partner", 0.005),
    ("Press", 0.005),
]
ATTRIBUTES = {  # the workspace's catalogue: key -> type
    "plan": "string",
    "lifetime_value": "number",
    "orders": "number",
    "newsletter": "boolean",
    "signup_date": "date",
    "last_seen_at": "datetime",
    "language": "string",
    "favourite_category": "string",
    "app_version": "string",
    "interests": "list",
}
CATEGORIES = ["shoes", "outdoor", "books", "garden", "kitchen", "toys", "beauty", "sport"]


def fold(text: str) -> str:
    """What herald_fold does to a name (lower case, accents off), to check an order."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def configure_django() -> None:
    os.environ.update(
        DATABASE_URL=f"{PG_SERVER}/{DB_NAME}",
        DEBUG="0",
        PROVIDER_SECRET_KEYS="dGVzdC1vbmx5LXByb3ZpZGVyLXNlY3JldC1rZXktMzI=",
        SECRET_KEY="bench-only-secret-key-" + "k" * 50,
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        STATIC_MANIFEST="0",
        STATIC_ROOT=tempfile.mkdtemp(prefix="herald-bench-static-"),  # quiets WhiteNoise
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test Client then hands back each response's context


# --- Data ---------------------------------------------------------------------------------


def admin_execute(*statements: str) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def attributes(rng, now) -> dict:
    signup = now - timedelta(days=rng.randint(0, 1500))
    values = {
        "plan": rng.choices(["free", "starter", "pro", "enterprise"], [60, 20, 15, 5])[0],
        "lifetime_value": round(rng.expovariate(1 / 120), 2),
        "orders": rng.randint(0, 40),
        "newsletter": rng.random() < 0.4,
        "signup_date": signup.date().isoformat(),
        "last_seen_at": (now - timedelta(minutes=rng.randint(0, 200_000))).isoformat(),
        "language": rng.choices(["en", "fr", "de", "es", "it", "nl"], [40, 20, 15, 10, 8, 7])[0],
        "favourite_category": rng.choice(CATEGORIES),
        "app_version": f"4.{rng.randint(0, 12)}.{rng.randint(0, 9)}",
        "interests": rng.sample(CATEGORIES, rng.randint(0, 3)),
    }
    # Not everyone has every attribute: ~10% of the values are missing.
    return {k: v for k, v in values.items() if rng.random() > 0.1}


def copy_people(conn, *, workspace_id: int, n: int, rng, prefix: str) -> None:
    """`n` people of a workspace in one COPY, oldest first (ids grow with created_at)."""
    now = datetime.now(UTC)
    companies = [
        f"{rng.choice(LAST_NAMES)} {rng.choice(['Ltd', 'GmbH', 'SA', 'BV', 'Group', 'Labs'])} {i}"
        for i in range(max(10, n // 200))
    ]
    with conn.cursor() as cur:
        with cur.copy("COPY people_company (workspace_id, name, created_at) FROM STDIN") as copy:
            for name in companies:
                copy.write_row((workspace_id, name, now))
        cur.execute(
            "SELECT id FROM people_company WHERE workspace_id = %s ORDER BY id", [workspace_id]
        )
        company_ids = [r[0] for r in cur.fetchall()]
        cur.execute(
            "INSERT INTO people_attributedefinition "
            "(workspace_id, key, label, type, inferred, created_at, updated_at) "
            "SELECT %s, key, key, type, false, now(), now() "
            "FROM unnest(%s::text[], %s::text[]) AS a(key, type)",
            [workspace_id, list(ATTRIBUTES), list(ATTRIBUTES.values())],
        )
        columns = (
            "workspace_id, external_id, email, phone, first_name, last_name, gender, country, "
            "city, address, company_id, attributes, created_at, updated_at"
        )
        weights = [w for _, _, w in CITIES]
        start = now - timedelta(days=3 * 365)
        step = (now - start) / n
        with cur.copy(f"COPY people_person ({columns}) FROM STDIN") as copy:
            for i in range(n):
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                city, country, _ = rng.choices(CITIES, weights)[0]
                created = start + step * i
                email = (
                    f"{first}.{last}{i}@{rng.choice(DOMAINS)}".lower().replace("'", "")
                    if rng.random() < 0.92
                    else ""
                )
                copy.write_row(
                    (
                        workspace_id,
                        f"{prefix}-{i:07d}",
                        email,
                        f"+447{rng.randint(100000000, 999999999)}" if rng.random() < 0.6 else "",
                        first,
                        last,
                        rng.choices(["female", "male", "", "non-binary"], [45, 45, 8, 2])[0],
                        country,
                        city,
                        f"{rng.randint(1, 250)} {rng.choice(STREETS)}",
                        rng.choice(company_ids) if rng.random() < 0.6 else None,
                        Jsonb(attributes(rng, now)),
                        created,
                        created,
                    )
                )
        # Tags: each person draws one number; ranges of it give each tag its share, so
        # ~20% of people have a tag, a few have two (VIP + Newsletter overlap).
        for name, _ in TAGS:
            cur.execute(
                "INSERT INTO people_tag (workspace_id, name, created_at) VALUES (%s, %s, now())",
                [workspace_id, name],
            )
        low = 0.0
        for name, share in TAGS:
            cur.execute(
                "INSERT INTO people_persontag "
                "(workspace_id, person_id, tag_id, source, created_at) "
                "SELECT p.workspace_id, p.id, t.id, 'import', p.created_at "
                "FROM people_person p JOIN people_tag t "
                "  ON t.workspace_id = p.workspace_id AND t.name = %s "
                "WHERE p.workspace_id = %s "
                "  AND (hashint8(p.id) & 1048575) / 1048576.0 >= %s "
                "  AND (hashint8(p.id) & 1048575) / 1048576.0 < %s",
                [name, workspace_id, low, low + share],
            )
            # Newsletter overlaps VIP (the range starts inside VIP's).
            low += share if name != "VIP" else share * 0.6


def build(big: int, small: int) -> None:
    from django.core.management import call_command

    from accounts.models import Membership, Role, User
    from accounts.services import workspace_create

    log(f"creating and migrating {DB_NAME}")
    call_command("migrate", verbosity=0)
    rng = random.Random(20261125)
    dsn = f"{PG_SERVER}/{DB_NAME}"
    for name, n, prefix in (("Big", big, "big"), ("Small", small, "small")):
        owner = User.objects.create_user(email=f"owner@{prefix}.test")
        workspace = workspace_create(name=name, owner=owner, actor=Actor(system="benchmark"))
        ops = User.objects.create_user(email=f"ops@{prefix}.test")
        Membership.objects.create(workspace=workspace, user=ops, role=Role.OPS)
        log(f"copying {n:,} people into {name}")
        began = time.perf_counter()
        with psycopg.connect(dsn) as conn:
            copy_people(conn, workspace_id=workspace.pk, n=n, rng=rng, prefix=prefix)
        log(f"  {time.perf_counter() - began:.0f} s")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# --- Measure ------------------------------------------------------------------------------


def measure(prefix: str) -> dict:
    """{page: (median ms, queries)} for the ops member of the workspace."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from people.models import Person

    client = Client()
    client.force_login(User.objects.get(email=f"ops@{prefix}.test"))
    with_email = (
        Person.objects.unscoped()
        .filter(external_id__startswith=f"{prefix}-")
        .exclude(email="")
        .order_by("id")
    )
    person = with_email[min(1234, with_email.count() // 2)]
    first = client.get("/people/")
    assert first.status_code == 200, first.status_code
    after = first.context["next_after"]
    by_email = client.get("/people/?sort=-email")
    pages = {
        "first": "/people/",
        "filtered": "/people/?city=London&tags=VIP",
        "next": f"/people/?after={after}",
        "search": f"/people/?q={quote(person.email)}",
        "by_name": "/people/?sort=name",
        "by_email_next": f"/people/?sort=-email&after={by_email.context['next_after']}",
        "filtered_by_city": "/people/?tags=VIP&sort=-city",
    }
    out = {}
    for page, url in pages.items():
        client.get(url)  # warm-up
        times = []
        for _ in range(RUNS):
            began = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            times.append(1000 * (time.perf_counter() - began))
            assert response.status_code == 200, (url, response.status_code)
        rows = response.context["rows"]
        if page == "search":
            assert [p.pk for p in rows] == [person.pk], "the search did not find the person"
        elif page == "filtered":
            assert rows and all(p.city == "London" and "VIP" in p.tag_names for p in rows), (
                "the filtered page shows people outside the filter"
            )
        elif page == "by_name":
            names = [(fold(p.first_name), fold(p.last_name)) for p in rows]
            assert names == sorted(names), "not in name order"
        elif page == "by_email_next":
            emails = [p.email for p in rows]
            assert emails == sorted(emails, reverse=True), "not in email order"
        count = response.context["count"]
        log(
            f"  {prefix:5} {page:8} median {statistics.median(times):6.1f} ms "
            f"(min {min(times):.1f}, max {max(times):.1f}), {len(queries)} queries, "
            f"{len(rows)} rows, count {'' if count.exact else '~'}{count.value:,}"
        )
        out[page] = (statistics.median(times), len(queries), queries.captured_queries)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="time a kept database again")
    parser.add_argument("--sql", action="store_true", help="print the queries of each page")
    args = parser.parse_args()

    if not args.reuse:
        admin_execute(
            f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"'
        )
    configure_django()
    try:
        if not args.reuse:
            build(args.people, args.small)
        log(f"timing (median of {RUNS} after a warm-up)")
        big = measure("big")
        small = measure("small")
        if args.sql:
            for page, (_, _, queries) in big.items():
                log(f"--- {page}")
                for q in queries:
                    log(f"  [{q['time']}s] {q['sql']}")
        big_counts = {page: n for page, (_, n, _) in big.items()}
        small_counts = {page: n for page, (_, n, _) in small.items()}
        if big_counts != small_counts:
            raise SystemExit(f"query counts differ: 1M {big_counts} vs 10k {small_counts}")

        def fmt(counts):
            values = set(counts.values())
            return str(values.pop()) if len(values) == 1 else "/".join(map(str, counts.values()))

        ms = {page: t for page, (t, _, _) in big.items()}
        print(
            f"people_page people={args.people} first={ms['first']:.0f}ms "
            f"filtered={ms['filtered']:.0f}ms next={ms['next']:.0f}ms search={ms['search']:.0f}ms "
            f"sorted={ms['by_name']:.0f}/{ms['by_email_next']:.0f}/{ms['filtered_by_city']:.0f}ms "
            f"queries={fmt(big_counts)} (10k: {fmt(small_counts)}) target<={TARGET_MS}ms",
            flush=True,
        )
    finally:
        from django.db import connections

        connections.close_all()
        os.rmdir(os.environ["STATIC_ROOT"])
        if args.keep or args.reuse:
            log(f"kept the database {DB_NAME}")
        else:
            admin_execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
