"""The flow engine: runs are rows (FlowRun), advanced in batches by whoever calls
`advance` (beat, and a task after commit when people enter).

- **Claim**: due runs of live flows (`wake_at <= now`) are taken with FOR UPDATE SKIP
  LOCKED and a lease; a worker that dies leaves its runs to be claimed again when the
  lease runs out. Waiting is a row with a later `wake_at`, never a sleeping worker.
- **Once per run**: a step's effect is applied in the transaction that inserts the run's
  FlowRunStep row for it (unique per run and step) and moves the run on; a run whose row
  is there already (its step was applied, the worker died before the lease ended) only
  moves on. So each step happens at most once per run, and the run ends once.
- **Set-based**: the claimed runs at the same step of the same version are done together:
  one INSERT ... SELECT for a tag or an audience, one UPDATE for an attribute, the branch's
  rule tree compiled by the segment compiler over the batch's people, a split by a stable
  hash of the run.
"""

import logging
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import Actor
from campaigns.flows.validation import seconds, successors
from campaigns.models import Flow, FlowRun, FlowVersion, Reentry, RunStatus
from people.models import Person

log = logging.getLogger(__name__)

BATCH = 1000
LEASE = timedelta(minutes=5)
ACTOR = Actor.of_system("flow")


class StepFailed(Exception):
    """A step cannot be done for the runs at it (an audience deleted, a rule that no
    longer compiles): they are marked failed with this reason; the rest go on."""


# --- entering ------------------------------------------------------------------------------


def enter(flow: Flow, people, *, now: datetime | None = None, source: str = "") -> int:
    """Start runs of the flow's newest version for `people` (a queryset or ids), set-based,
    as its re-entry rule allows: never (nobody who had a run), after_exit (nobody in it
    now), always (a new run each time). The number of runs started."""
    now = now or timezone.now()
    version = flow.versions.order_by("-number").first()
    if version is None:
        return 0
    if hasattr(people, "values"):
        ids_sql, ids_params = people.order_by().values("id").query.sql_with_params()
        source_sql = f"SELECT p.id FROM ({ids_sql}) p"  # noqa: S608 - a compiled queryset
    else:
        ids_params = [list(people)]
        source_sql = "SELECT unnest(%s::bigint[]) AS id"
    rule = version.reentry
    guard = {
        Reentry.NEVER: "NOT EXISTS (SELECT 1 FROM campaigns_flowrun r WHERE r.flow_id = %s "
                       "AND r.person_id = x.id)",
        Reentry.AFTER_EXIT: "NOT EXISTS (SELECT 1 FROM campaigns_flowrun r WHERE r.flow_id = "
                            "%s AND r.person_id = x.id AND r.status IN ('active', 'waiting'))",
        Reentry.ALWAYS: "%s IS NOT NULL",
    }[rule]  # fmt: skip
    first = version.steps[0]["id"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO campaigns_flowrun (workspace_id, flow_id, version_id, person_id, step,
                status, wake_at, entered_at, updated_at, error, source, concurrent)
            SELECT %s, %s, %s, x.id, %s, 'active', %s, %s, %s, '', %s, %s
            FROM ({source_sql}) x
            JOIN people_person pp ON pp.id = x.id AND pp.workspace_id = %s
            WHERE {guard}
            ON CONFLICT DO NOTHING
            """,  # noqa: S608 - SQL of ours and a compiled queryset
            [flow.workspace_id, flow.pk, version.pk, first, now, now, now, source[:40],
             rule == Reentry.ALWAYS, *ids_params, flow.workspace_id, flow.pk],
        )  # fmt: skip
        started = cursor.rowcount
    if started:
        transaction.on_commit(_kick)
    return started


def _kick() -> None:
    from celery import current_app

    try:
        current_app.send_task("campaigns.flows.tasks.flows_advance_task")
    except Exception:  # noqa: BLE001 - beat advances them anyway
        log.warning("Could not enqueue the flow engine; beat will run it.")


# --- claiming and advancing ----------------------------------------------------------------


def claim(*, now: datetime, limit: int = BATCH) -> list[tuple]:
    """(run id, version id, step, person id, status) of up to `limit` due runs of live
    flows, leased to this worker."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_flowrun r SET lease_until = %s
            WHERE r.id IN (
                SELECT r2.id FROM campaigns_flowrun r2
                JOIN campaigns_flow f ON f.id = r2.flow_id AND f.status = 'live'
                WHERE r2.status IN ('active', 'waiting') AND r2.wake_at <= %s
                  AND (r2.lease_until IS NULL OR r2.lease_until < %s)
                ORDER BY r2.wake_at LIMIT %s
                FOR UPDATE OF r2 SKIP LOCKED)
            RETURNING r.id, r.version_id, r.step, r.person_id, r.status
            """,
            [now + LEASE, now, now, limit],
        )
        return cursor.fetchall()


_versions: dict[int, FlowVersion] = {}


def _version(pk: int) -> FlowVersion:
    version = _versions.get(pk)
    if version is None:  # a version never changes: kept per process
        version = FlowVersion.objects.unscoped().select_related("flow").get(pk=pk)
        if len(_versions) > 2_000:
            _versions.clear()
        _versions[pk] = version
    return version


def advance(*, now: datetime | None = None, batch: int = BATCH, max_batches: int = 1000
            ) -> Counter:  # fmt: skip
    """Advance due runs batch after batch until none is due: the steps executed, by type."""
    done: Counter = Counter()
    for _ in range(max_batches):
        current = now or timezone.now()
        claimed = claim(now=current, limit=batch)
        if not claimed:
            break
        groups: dict[tuple, list] = defaultdict(list)
        for run_id, version_id, step, person_id, status in claimed:
            groups[(version_id, step)].append((run_id, person_id, status))
        for (version_id, step_id), runs in groups.items():
            version = _version(version_id)
            step = next((s for s in version.steps if s["id"] == step_id), None)
            try:
                if step is None:
                    raise StepFailed(f"step “{step_id}” is not in version {version.number}")
                done[step["type"]] += execute(version, step, runs, now=current)
            except StepFailed as e:
                _fail([r[0] for r in runs], str(e), now=current)
    return done


def _fail(run_ids: list[int], reason: str, *, now: datetime) -> None:
    FlowRun.objects.unscoped().filter(pk__in=run_ids).update(
        status=RunStatus.FAILED, error=reason[:2000], lease_until=None, updated_at=now
    )


def _log(version: FlowVersion, step: dict, run_ids: list[int], *, now: datetime,
         outcome: str = "") -> list[int]:  # fmt: skip
    """Insert the runs' rows for `step` (once per run): the runs whose row is new."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO campaigns_flowrunstep (workspace_id, run_id, step, type, outcome, at)
            SELECT %s, u.id, %s, %s, %s, %s FROM unnest(%s::bigint[]) AS u(id)
            ON CONFLICT (run_id, step) DO NOTHING
            RETURNING run_id
            """,
            [version.workspace_id, step["id"], step["type"], outcome[:200], now, run_ids],
        )
        return [row[0] for row in cursor.fetchall()]


def _outcome(run_ids: list[int], step_id: str, outcome: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_flowrunstep SET outcome = %s WHERE step = %s AND run_id = ANY(%s)",
            [outcome[:200], step_id, run_ids],
        )


def _move(run_ids: list[int], next_step: str | None, *, now: datetime,
          wake_at: datetime | None = None, exited: bool = False) -> None:  # fmt: skip
    """The runs on to `next_step` (due at `wake_at`, else now), or done / exited."""
    if not run_ids:
        return
    runs = FlowRun.objects.unscoped().filter(pk__in=run_ids)
    if exited:
        runs.update(status=RunStatus.EXITED, lease_until=None, updated_at=now)
    elif next_step is None:
        runs.update(status=RunStatus.DONE, lease_until=None, updated_at=now)
    else:
        runs.update(step=next_step, status=RunStatus.ACTIVE, wake_at=wake_at or now,
                    lease_until=None, updated_at=now)  # fmt: skip


def _people(run_ids: list[int]):
    return Person.objects.unscoped().filter(
        pk__in=FlowRun.objects.unscoped().filter(pk__in=run_ids).values("person_id")
    )


def execute(version: FlowVersion, step: dict, runs: list[tuple], *, now: datetime) -> int:
    """Do `step` for the claimed `runs` [(run id, person id, status)]; the number of runs
    it was executed for (a run only moving on after a restart is not counted)."""
    kind = step["type"]
    ids = [r[0] for r in runs]
    nxt = (successors(step) or [None])[0]
    with transaction.atomic():
        if kind == "wait":
            woken = [r[0] for r in runs if r[2] == RunStatus.WAITING]
            _move(woken, nxt, now=now)
            fresh = [r[0] for r in runs if r[2] != RunStatus.WAITING]
            until = _wait_until(version, step, fresh, now=now)
            fresh = _log(version, step, fresh, now=now)
            if fresh:  # each run's end of wait, in one UPDATE
                with connection.cursor() as cursor:
                    cursor.execute(
                        "UPDATE campaigns_flowrun r SET status = 'waiting', wake_at = u.until, "
                        "lease_until = NULL, updated_at = %s FROM unnest(%s::bigint[], "
                        "%s::timestamptz[]) AS u(id, until) WHERE r.id = u.id",
                        [now, fresh, [until[i] for i in fresh]],
                    )
            return len(fresh)
        if kind == "wait_for_event":
            return _wait_for_event(version, step, runs, now=now)
        fresh = _log(version, step, ids, now=now)
        if kind == "exit":
            _move(ids, None, now=now, exited=True)
        elif kind == "branch":
            yes = set(_matching(version, step, fresh, now=now)) if fresh else set()
            _outcome([i for i in fresh if i in yes], step["id"], "yes")
            _outcome([i for i in fresh if i not in yes], step["id"], "no")
            taken = _taken_paths(step["id"], ids)
            _move([i for i in ids if taken.get(i) == "yes"], step["yes"], now=now)
            _move([i for i in ids if taken.get(i) != "yes"], step["no"], now=now)
        elif kind == "split":
            for path_index, run_ids in _split(step, ids).items():
                _outcome([i for i in run_ids if i in set(fresh)], step["id"],
                         f"path {path_index + 1}")  # fmt: skip
                _move(run_ids, step["paths"][path_index]["next"], now=now)
        else:
            if fresh:
                _act(version, step, fresh, now=now)
            _move(ids, nxt, now=now)
    return len(fresh)


def _taken_paths(step_id: str, run_ids: list[int]) -> dict[int, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT run_id, outcome FROM campaigns_flowrunstep WHERE step = %s AND "
            "run_id = ANY(%s)",
            [step_id, run_ids],
        )
        return dict(cursor.fetchall())


def _split(step: dict, run_ids: list[int]) -> dict[int, list[int]]:
    """Each run's path by a stable hash of the run: a run restarted takes the same one."""
    buckets: dict[int, list[int]] = defaultdict(list)
    for run_id in run_ids:
        point = (run_id * 2654435761) % 10_000  # Knuth's multiplicative hash
        upto = 0
        for index, path in enumerate(step["paths"]):
            upto += path["percent"] * 100
            if point < upto or index == len(step["paths"]) - 1:
                buckets[index].append(run_id)
                break
    return buckets


def _matching(version: FlowVersion, step: dict, run_ids: list[int], *, now: datetime) -> list:
    """The runs whose person the branch's rule tree holds for (one query, compiled by the
    segment compiler over the batch's people)."""
    from segments.rules import RuleError, compile_rules, parse_rules

    people = list(FlowRun.objects.unscoped().filter(pk__in=run_ids).values_list("pk", "person_id"))
    person_ids = [p for _, p in people]
    try:
        condition = compile_rules(parse_rules(step["rules"]), workspace=version.workspace,
                                  now=now, person_ids=person_ids)  # fmt: skip
    except RuleError as e:
        raise StepFailed(f"the branch's rules no longer hold together: {e}") from e
    holding = set(
        Person.objects.unscoped().filter(workspace_id=version.workspace_id, pk__in=person_ids)
        .filter(condition).values_list("pk", flat=True)
    )  # fmt: skip
    return [run for run, person in people if person in holding]


def _wait_until(version: FlowVersion, step: dict, run_ids: list[int], *, now: datetime) -> dict:
    """When each run's wait ends: now + the duration, or the next HH:MM in the person's
    time zone (else the workspace's)."""
    if "for" in step:
        until = now + timedelta(seconds=seconds(step["for"]))
        return dict.fromkeys(run_ids, until)
    if not run_ids:
        return {}
    from campaigns.dispatch.freeze import zone_sql

    zone = zone_sql("p") if step.get("time_zone") == "recipient" else "%s"
    hour = step["until"] + ":00"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT z.id, CASE WHEN timezone(z.zone, %s::timestamptz)::time < %s::time
                              THEN timezone(z.zone, timezone(z.zone, %s::timestamptz)::date
                                   + %s::time)
                              ELSE timezone(z.zone, timezone(z.zone, %s::timestamptz)::date
                                   + 1 + %s::time) END
            FROM (SELECT r.id, {zone} AS zone FROM campaigns_flowrun r
                  JOIN people_person p ON p.id = r.person_id WHERE r.id = ANY(%s)) z
            """,  # noqa: S608 - SQL of ours
            [now, hour, now, hour, now, hour, version.workspace.time_zone, run_ids],
        )  # fmt: skip
        return dict(cursor.fetchall())


def _wait_for_event(version: FlowVersion, step: dict, runs: list[tuple], *, now: datetime
                    ) -> int:  # fmt: skip
    """First visit: wait until the timeout. When due again (the event came, or the time
    is up): yes if the person had the event since the wait began, else no."""
    fresh_runs = [r[0] for r in runs if r[2] != RunStatus.WAITING]
    fresh = _log(version, step, fresh_runs, now=now, outcome="waiting")
    until = now + timedelta(seconds=seconds(step["within"]))
    FlowRun.objects.unscoped().filter(pk__in=fresh).update(
        status=RunStatus.WAITING, wake_at=until, lease_until=None, updated_at=now)  # fmt: skip
    woken = [r[0] for r in runs if r[2] == RunStatus.WAITING]
    if woken:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT s.run_id FROM campaigns_flowrunstep s
                JOIN campaigns_flowrun r ON r.id = s.run_id
                WHERE s.step = %s AND s.run_id = ANY(%s) AND EXISTS (
                    SELECT 1 FROM people_event e WHERE e.workspace_id = r.workspace_id
                      AND e.person_id = r.person_id AND e.name = %s AND e.occurred_at >= s.at)
                """,
                [step["id"], woken, step["event"]],
            )
            came = {row[0] for row in cursor.fetchall()}
        _outcome([i for i in woken if i in came], step["id"], "yes")
        _outcome([i for i in woken if i not in came], step["id"], "no")
        _move([i for i in woken if i in came], step["yes"], now=now)
        _move([i for i in woken if i not in came], step["no"], now=now)
    return len(fresh)


def wake_on_events(*, now: datetime | None = None) -> int:
    """Runs waiting for an event that came are made due now (one UPDATE over the waiting
    runs at wait_for_event steps of live flows, the event read from their version's
    step): they take the yes path at the next advance instead of at the timeout."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_flowrun r SET wake_at = %s
            FROM campaigns_flowrunstep s, campaigns_flowversion v, campaigns_flow f
            WHERE s.run_id = r.id AND s.step = r.step AND s.type = 'wait_for_event'
              AND v.id = r.version_id AND f.id = r.flow_id AND f.status = 'live'
              AND r.status = 'waiting' AND r.wake_at > %s
              AND EXISTS (
                SELECT 1 FROM people_event e
                WHERE e.workspace_id = r.workspace_id AND e.person_id = r.person_id
                  AND e.occurred_at >= s.at
                  AND e.name = (SELECT st->>'event' FROM jsonb_array_elements(v.steps) st
                                WHERE st->>'id' = r.step LIMIT 1))
            """,
            [now, now],
        )
        return cursor.rowcount


def _act(version: FlowVersion, step: dict, run_ids: list[int], *, now: datetime) -> None:
    """A step that changes the people of `run_ids` (their rows just logged), set-based."""
    kind = step["type"]
    people = _people(run_ids)
    workspace = version.workspace
    if kind in ("add_tag", "remove_tag"):
        from people.models import Tag
        from people.services.tags import tag_get_or_create, tags_assign, tags_unassign

        if kind == "add_tag":
            tag = tag_get_or_create(workspace=workspace, name=step["tag"], actor=ACTOR)
            tags_assign(workspace=workspace, tag=tag, people=people, actor=ACTOR)
        else:
            tag = Tag.objects.for_workspace(workspace).filter(name__iexact=step["tag"]).first()
            if tag is not None:
                tags_unassign(workspace=workspace, tag=tag, people=people, actor=ACTOR)
    elif kind in ("add_to_audience", "remove_from_audience"):
        from audiences.models import TargetAudience
        from audiences.services import audience_add_people, audience_remove_people

        audience = TargetAudience.objects.for_workspace(workspace).filter(
            pk=step["audience"]).first()  # fmt: skip
        if audience is None:
            raise StepFailed(f"the target audience #{step['audience']} was deleted")
        if kind == "add_to_audience":
            audience_add_people(audience=audience, people=people, actor=ACTOR)
        else:
            audience_remove_people(audience=audience, people=people, actor=ACTOR)
    elif kind == "add_to_dnc":
        from people.models import DncSource
        from people.services.dnc import dnc_add_many

        column = {"email": "email", "sms": "phone"}.get(step["channel"])
        if column is None:  # push: each token of theirs
            from people.models import PushToken

            addresses = list(PushToken.objects.filter(person__in=people)
                             .values_list("token", flat=True))  # fmt: skip
        else:
            addresses = [a for a in people.values_list(column, flat=True) if a]
        if addresses:
            dnc_add_many(workspace=workspace, channel=step["channel"], addresses=addresses,
                         actor=ACTOR, reason=f"Flow “{version.flow.name}”",
                         source=DncSource.FLOW)  # fmt: skip
    elif kind == "set_attribute":
        from people.changes import attr_key, record_change

        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE people_person SET attributes = attributes || jsonb_build_object(%s, "
                "%s::jsonb), updated_at = %s WHERE workspace_id = %s AND id IN ("
                "SELECT person_id FROM campaigns_flowrun WHERE id = ANY(%s))",
                [step["attribute"], _json(step["value"]), now, workspace.pk, run_ids],
            )
        record_change(workspace=workspace.pk, keys=[attr_key(step["attribute"])], people=people)
    elif kind == "send":
        from campaigns.flows.sending import queue

        counts = queue(version, step, run_ids, now=now)
        _outcome(run_ids, step["id"], f"queued {counts['queued']}, skipped {counts['skipped']}")


def _json(value) -> str:
    import json

    return json.dumps(value)

