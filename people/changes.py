"""The real-time outbox's door (PersonChange): every write path that can move a person
into or out of a real-time segment calls record_change in its own transaction.

After commit one message asks a worker to evaluate (segments.realtime, by task name:
people sits below segments in the app chain and imports nothing of it). A broker that is
down loses nothing: the row is there, and the beat sweep takes what no task took.
"""

import logging
from collections.abc import Iterable

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import QuerySet

from accounts import degraded
from people.models import Person, PersonChange

log = logging.getLogger(__name__)

EVALUATE_TASK = "segments.tasks.evaluate_changes_task"
ANY_RULE = "*"  # a person created: any rule may now hold for them, a negated one too
# More people than this in one change, or in one evaluated batch: "everyone" (the segments
# named are re-checked whole, set-based) rather than a list of ids.
LIST_AT_MOST = 50_000


def attr_key(name: str) -> str:
    return f"attr:{name}"


def event_key(name: str) -> str:
    return f"event:{name}"


def tag_key(name: str) -> str:
    return f"tag:{name.lower()}"


def audience_key(name: str) -> str:
    return f"audience:{name.lower()}"


def segment_key(segment_id: int) -> str:
    return f"segment:{segment_id}"


def gone_key(key: str) -> str:
    """Beside a tag_key / audience_key: the tag or audience itself was deleted (the
    real-time segments naming it are marked failed rather than emptied)."""
    return f"gone:{key}"


def record_change(
    *,
    workspace,
    keys: Iterable[str],
    person_ids: Iterable[int] | None = None,
    people: QuerySet[Person] | None = None,
    everyone: bool = False,
) -> None:
    """One outbox row: `person_ids` (or the ids of `people`, read by the database in the
    same statement, or everyone) changed in what `keys` name. Nothing is written for no
    key or no person."""
    keys = sorted(set(keys))
    workspace_id = getattr(workspace, "pk", workspace)
    if not keys:
        return
    if everyone:
        PersonChange.objects.create(workspace_id=workspace_id, everyone=True, keys=keys)
    elif people is not None:
        try:
            sql, params = people.order_by().values("id").query.sql_with_params()
        except EmptyResultSet:  # a filter that matches nobody (people.none())
            return
        # over LIST_AT_MOST people (a bulk action on "all N matching") the row says
        # "everyone" rather than carry an array of a million ids nobody would read
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO people_personchange "  # noqa: S608 - the ORM's own SQL
                "(workspace_id, person_ids, everyone, keys, created_at) "
                "SELECT %s, CASE WHEN count(*) > %s THEN '{}'::bigint[] "
                "ELSE array_agg(DISTINCT p.id) END, count(*) > %s, %s, now() "
                f"FROM ({sql}) p HAVING count(*) > 0",
                [workspace_id, LIST_AT_MOST, LIST_AT_MOST, keys, *params],
            )
            if not cursor.rowcount:
                return
    else:
        ids = sorted(set(person_ids or ()))
        if not ids:
            return
        if len(ids) > LIST_AT_MOST:
            PersonChange.objects.create(workspace_id=workspace_id, everyone=True, keys=keys)
        else:
            PersonChange.objects.create(workspace_id=workspace_id, person_ids=ids, keys=keys)
    _kick_after_commit()


def _kick_after_commit() -> None:
    """One evaluation message per transaction, however many changes it records."""
    conn = transaction.get_connection()
    if conn.in_atomic_block and any(func is _kick for _, func, _ in conn.run_on_commit):
        return
    transaction.on_commit(_kick)


def _kick() -> None:
    from celery import current_app

    if current_app.conf.task_always_eager:  # send_task ignores it: run here, as .delay would
        current_app.loader.import_default_modules()  # the apps' tasks modules, by name
        current_app.tasks[EVALUATE_TASK].apply()
        return
    try:
        current_app.send_task(EVALUATE_TASK, ignore_result=True, retry=False)
    except Exception as e:  # noqa: BLE001 - the outbox row waits for the beat sweep
        log.warning("could not queue the real-time evaluation (%s); the beat sweep will", e)
        degraded.note(degraded.TASK_QUEUE, e)
