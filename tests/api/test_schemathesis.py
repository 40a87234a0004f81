"""The API as its OpenAPI document describes it, tried by schemathesis as a client would:
every operation, generated requests valid and invalid, then the stateful phase (chains of
calls following the links from the operations that create objects to those that use
them), against the live test server and a workspace with data so operations get past 404.

It fails on any server error, undocumented status or content type, response outside its
schema, schema-valid request refused (except the refusals schemathesis.toml lists, each
with its reason) or schema-violating request accepted. The bounded run here keeps `make
test` within a few minutes; HERALD_SCHEMATHESIS_EXAMPLES=100 runs the nightly size.
"""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.audit import Actor
from accounts.services import api_key_create
from audiences.services import audience_add_people, audience_create
from people.models import Person
from people.services.dnc import dnc_add
from people.services.events import event_ingest_batch
from people.services.people import person_upsert_batch
from people.services.tags import tag_people_by_external_ids
from segments.services import segment_create, static_members_change
from tests.factories import WorkspaceFactory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("HERALD_SCHEMATHESIS_EXAMPLES", "25"))
# The coverage phase (every boundary of every schema: about 5,000 more cases) belongs to the
# nightly-sized run, HERALD_SCHEMATHESIS_PHASES=examples,coverage,fuzzing,stateful.
PHASES = os.environ.get("HERALD_SCHEMATHESIS_PHASES", "examples,fuzzing,stateful")
SYSTEM = Actor(system="tests")

pytestmark = pytest.mark.schemathesis


def _workspace_with_data():
    workspace = WorkspaceFactory(name="Fuzzed")
    other = WorkspaceFactory(name="Elsewhere")  # its objects must stay out of reach
    api_key_create(workspace=other, name="theirs", actor=SYSTEM)
    people = [
        {
            "external_id": str(n) if n < 10 else f"user-{n}",
            "email": f"person{n}@example.com",
            "phone": f"+4479110{n:05d}",
            "first_name": "Ana" if n % 2 else "Ben",
            "city": "London" if n % 3 else "Paris",
        }
        for n in range(40)
    ]
    person_upsert_batch(workspace=workspace, items=people, actor=SYSTEM)
    now = timezone.now()
    event_ingest_batch(
        workspace=workspace,
        items=[
            {
                "person": p["external_id"],
                "name": "App Launch",
                "occurred_at": now - timedelta(days=n),
            }
            for n, p in enumerate(people)
        ],
        now=now,
        actor=SYSTEM,
    )
    tag_people_by_external_ids(
        workspace=workspace, name="0", external_ids=["0", "1", "2"], actor=SYSTEM
    )
    everyone = Person.objects.for_workspace(workspace)
    for name in ("0", "VIP"):
        audience = audience_create(workspace=workspace, name=name, actor=SYSTEM)
        audience_add_people(audience=audience, people=everyone, actor=SYSTEM)
    static = segment_create(workspace=workspace, name="0", kind="static", actor=SYSTEM)
    static_members_change(segment=static, people=everyone, add=True, actor=SYSTEM)
    segment_create(
        workspace=workspace,
        name="Londoners",
        kind="snapshot",
        rules={"attribute": "city", "op": "is", "value": "London"},
        actor=SYSTEM,
    )
    dnc_add(workspace=workspace, channel="email", address="person0@example.com", actor=SYSTEM)
    _, raw = api_key_create(workspace=workspace, name="schemathesis", actor=SYSTEM)
    return raw


def test_every_operation_answers_as_documented(live_server, settings, transactional_db):
    # the run sends thousands of requests from one address, some with bad keys on purpose
    settings.API_RATE_LIMIT = "1000000/s"
    settings.API_AUTH_FAILURE_LIMIT = "1000000/s"
    settings.SECURE_SSL_REDIRECT = False
    raw_key = _workspace_with_data()
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{live_server.url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {raw_key}",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        PHASES,
        "--seed",
        os.environ.get("HERALD_SCHEMATHESIS_SEED", "20261202"),
        "--no-color",
    ]
    run = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    output = run.stdout + run.stderr
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-3000:]
    print(summary)  # cases generated, operations covered, failures by kind
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested and int(tested.group(1)) >= 39, summary
    assert run.returncode == 0, output[-20000:]
