"""The TEMP tables of one job and the set-based SQL that turns them into memberships.

    stage     (line, key, aud_no, raw, reason): one row per data row of the file, filled
              with COPY; `aud_no` numbers the audience the row names (the reader numbers
              them, 1 in single mode); `reason` is set for a row that cannot be read.
    aud       (no, name, lkey, first_line, audience_id, created): one row per audience the
              file names (per_row) or the job's audience (single); audience_id NULL while
              the audience does not exist, `created` once this job created it.
    resolved  (aud_no, key, line, n, person_id): the file's distinct (audience, identifier)
              entries joined to people; person_id NULL for an identifier nobody has; `line`
              is the first line of the entry and `n` how many lines repeat it.

Everything here runs inside the job's merge transaction, except the stage's COPY. A dry
run runs the same statements up to `resolved`, then only counts (it inserts nothing, not
even into the TEMP tables' neighbours), so it takes no lock a real import would wait for.

The membership table is keyed by (audience, person) and has one more index (person):
inserting a million rows costs about two seconds, and the insert skips ON CONFLICT's
per-row speculative insertion when it can (see add_members).
"""

from contextlib import suppress
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from psycopg import errors as psycopg_errors
from psycopg import sql

from audiences.models import Identifier, MemberSource

# Sorting and hashing a million staged rows fits in memory with this much (the default
# 4 MB spills to disk); SET LOCAL, so only for the job's transaction.
WORK_MEM = "256MB"
STAGE_COLUMNS = sql.SQL(
    "line bigint NOT NULL, key text NOT NULL, aud_no int, raw text, reason text"
)
# Serializes the merges of one workspace's audience imports (two replace imports of the
# same audience must not interleave); per transaction, so a dead worker holds nothing.
_MERGE_LOCK = 0x4841_5544  # "HAUD"

_PERSON_MATCH = {
    Identifier.ID: sql.SQL("p.id = s.key::bigint"),
    Identifier.EXTERNAL_ID: sql.SQL("p.external_id = s.key"),
    Identifier.EMAIL: sql.SQL("p.email = s.key"),
    Identifier.PHONE: sql.SQL("p.phone = s.key"),
}


@dataclass
class Tables:
    stage: str
    aud: str
    resolved: str

    @classmethod
    def for_job(cls, import_id: int) -> "Tables":
        base = f"audience_import_{import_id}"
        return cls(stage=f"{base}_stage", aud=f"{base}_aud", resolved=f"{base}_resolved")

    def names(self) -> list[str]:
        return [self.stage, self.aud, self.resolved]

    def ids(self) -> dict:
        return {
            "stage": sql.Identifier(self.stage),
            "aud": sql.Identifier(self.aud),
            "resolved": sql.Identifier(self.resolved),
        }


class Stage:
    """The staging table, written with COPY in chunks.

    Each chunk is one COPY statement, so between chunks the connection is free for the
    progress update (a COPY in flight blocks every other statement on its connection).
    """

    def __init__(self, cursor, name: str):
        self.cursor = cursor
        self.name = sql.Identifier(name)
        self.rows = 0
        self._copy_cm = None
        self._copy = None

    def create(self) -> None:
        self.cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.name))
        self.cursor.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(self.name, STAGE_COLUMNS))

    def write(self, row: tuple) -> None:
        if self._copy is None:
            self._copy_cm = self.cursor.copy(
                sql.SQL("COPY {} (line, key, aud_no, raw, reason) FROM STDIN").format(self.name)
            )
            self._copy = self._copy_cm.__enter__()
        self._copy.write_row(row)
        self.rows += 1

    def flush(self) -> None:
        """End the COPY in flight (if any), making the rows so far part of the table."""
        if self._copy_cm is not None:
            cm, self._copy_cm, self._copy = self._copy_cm, None, None
            cm.__exit__(None, None, None)

    def abort(self) -> None:
        if self._copy_cm is not None:
            cm, self._copy_cm, self._copy = self._copy_cm, None, None
            # The COPY is abandoned on purpose; its own error is of no interest.
            with suppress(Exception):
                cm.__exit__(RuntimeError, RuntimeError("import aborted"), None)

    def analyze(self) -> None:
        """Table statistics, so the planner joins a million staged rows with hashes."""
        self.cursor.execute(sql.SQL("ANALYZE {}").format(self.name))


@dataclass
class MergeResult:
    matched: int = 0
    unmatched: int = 0
    added: int = 0
    removed: int = 0
    audiences_created: list[str] = field(default_factory=list)
    # audience id -> members added minus members removed, for the stored counts
    deltas: dict[int, int] = field(default_factory=dict)


def _execute(cursor, query, params=None):
    cursor.execute(query, params or {})
    return cursor


def lock_workspace(cursor, *, workspace_id: int) -> None:
    _execute(
        cursor,
        "SELECT pg_advisory_xact_lock(%(ns)s, %(ws)s)",
        {"ns": _MERGE_LOCK, "ws": workspace_id},
    )
    _execute(cursor, sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(WORK_MEM)))


def build_audiences(
    cursor, t: Tables, *, workspace_id: int, single_name: str | None,
    names: list[tuple[str, int]],
) -> None:  # fmt: skip
    """CREATE the aud table: the audience of a single-mode job, or the audiences a
    per_row file names (`names`: (spelling, first line), numbered from 1 in this order by
    the reader), with the ids of those that exist. Spellings that differ only in case are
    one audience, as TargetAudience's unique constraint says (PostgreSQL's lower(), which
    is not Python's): `canon` is the number of its first spelling, which names it."""
    ids = t.ids()
    _execute(cursor, sql.SQL("DROP TABLE IF EXISTS {aud}").format(**ids))
    _execute(
        cursor,
        sql.SQL(
            "CREATE TEMP TABLE {aud} (no int PRIMARY KEY, name text NOT NULL, "
            "lkey text GENERATED ALWAYS AS (lower(name)) STORED, first_line bigint NOT NULL, "
            "canon int, audience_id bigint, created boolean NOT NULL DEFAULT false)"
        ).format(**ids),
    )
    rows = [(1, single_name, 0)] if single_name is not None else (
        (no, name, line) for no, (name, line) in enumerate(names, start=1)
    )  # fmt: skip
    with cursor.copy(sql.SQL("COPY {aud} (no, name, first_line) FROM STDIN").format(**ids)) as copy:
        for row in rows:
            copy.write_row(row)
    _execute(
        cursor,
        sql.SQL(
            "UPDATE {aud} a SET canon = c.canon FROM (SELECT no, "
            "min(no) OVER (PARTITION BY lkey) AS canon FROM {aud}) c WHERE a.no = c.no"
        ).format(**ids),
    )
    _set_existing_ids(cursor, t, workspace_id=workspace_id)
    _execute(cursor, sql.SQL("ANALYZE {aud}").format(**ids))


def _set_existing_ids(cursor, t: Tables, *, workspace_id: int) -> None:
    _execute(
        cursor,
        sql.SQL(
            "UPDATE {aud} a SET audience_id = ta.id FROM audiences_targetaudience ta "
            "WHERE a.audience_id IS NULL AND ta.workspace_id = %(ws)s "
            "AND lower(ta.name) = a.lkey"
        ).format(**t.ids()),
        {"ws": workspace_id},
    )


def create_missing_audiences(cursor, t: Tables, *, workspace_id: int, now) -> list[str]:
    """INSERT the audiences that do not exist yet; returns their names in file order."""
    _execute(
        cursor,
        sql.SQL(
            """
            WITH created AS (
                INSERT INTO audiences_targetaudience
                    (workspace_id, name, people_count, created_at, updated_at)
                SELECT %(ws)s, a.name, 0, %(now)s, %(now)s
                FROM {aud} a WHERE a.audience_id IS NULL AND a.no = a.canon
                ORDER BY a.first_line
                ON CONFLICT DO NOTHING
                RETURNING name
            )
            SELECT c.name FROM created c
            JOIN {aud} a ON a.lkey = lower(c.name) AND a.no = a.canon
            ORDER BY a.first_line
            """
        ).format(**t.ids()),
        {"ws": workspace_id, "now": now},
    )
    names = [row[0] for row in cursor.fetchall()]
    # Marks the audiences this job is creating (they have no members yet, so their rows
    # need no check against existing members). One that another transaction created
    # meanwhile (ON CONFLICT skipped it) is marked too; add_members copes (see there).
    _execute(
        cursor,
        sql.SQL("UPDATE {aud} SET created = true WHERE audience_id IS NULL").format(**t.ids()),
    )
    # Such an audience is found here, since that transaction has committed by now.
    _set_existing_ids(cursor, t, workspace_id=workspace_id)
    return names


def lock_audiences(cursor, t: Tables) -> str | None:
    """Lock the job's audiences against deletion until the merge commits (FOR KEY SHARE:
    counts may still change). Returns the name of one that was deleted since its id was
    read, or None."""
    _execute(
        cursor,
        sql.SQL(
            "SELECT ta.id FROM audiences_targetaudience ta "
            "WHERE ta.id IN (SELECT audience_id FROM {aud}) FOR KEY SHARE"
        ).format(**t.ids()),
    )
    locked = {row[0] for row in cursor.fetchall()}
    _execute(
        cursor,
        sql.SQL(
            "SELECT name, audience_id FROM {aud} WHERE audience_id IS NOT NULL AND no = canon"
        ).format(**t.ids()),
    )
    return next(
        (name for name, audience_id in cursor.fetchall() if audience_id not in locked), None
    )


def would_create(cursor, t: Tables) -> list[str]:
    _execute(
        cursor,
        sql.SQL(
            "SELECT name FROM {aud} WHERE audience_id IS NULL AND no = canon ORDER BY first_line"
        ).format(**t.ids()),
    )
    return [row[0] for row in cursor.fetchall()]


def resolve(cursor, t: Tables, *, workspace_id: int, identifier: str) -> None:
    """CREATE the resolved table: one row per distinct (audience, identifier) entry and
    person it names (an email or phone may name several people), or one row with
    person_id NULL for an identifier nobody in the workspace has. The entries are grouped
    before the join, so the join and the grouping each see a million rows at most once."""
    ids = t.ids()
    _execute(cursor, sql.SQL("DROP TABLE IF EXISTS {resolved}").format(**ids))
    _execute(
        cursor,
        sql.SQL(
            """
            CREATE TEMP TABLE {resolved} AS
            SELECT s.aud_no, s.key, s.line, s.n, p.id AS person_id
            FROM (
                SELECT a.canon AS aud_no, st.key, min(st.line) AS line, count(*) AS n
                FROM {stage} st JOIN {aud} a ON a.no = st.aud_no
                WHERE st.reason IS NULL GROUP BY a.canon, st.key
            ) s
            LEFT JOIN people_person p ON p.workspace_id = %(ws)s AND {match}
            """
        ).format(match=_PERSON_MATCH[identifier], **ids),
        {"ws": workspace_id},
    )
    _execute(cursor, sql.SQL("ANALYZE {resolved}").format(**ids))


def count_entries(cursor, t: Tables, *, identifier: str) -> tuple[int, int]:
    """(matched, unmatched) distinct entries of the file."""
    ids = t.ids()
    _execute(
        cursor,
        sql.SQL(
            "SELECT count(*) FILTER (WHERE person_id IS NULL), "
            "count(*) FILTER (WHERE person_id IS NOT NULL) FROM {resolved}"
        ).format(**ids),
    )
    unmatched, matched = cursor.fetchone()
    if identifier in (Identifier.EMAIL, Identifier.PHONE):
        # several people may share an address: count the entry once
        _execute(
            cursor,
            sql.SQL(
                "SELECT count(*) FROM (SELECT 1 FROM {resolved} WHERE person_id IS NOT NULL "
                "GROUP BY aud_no, key) e"
            ).format(**ids),
        )
        matched = cursor.fetchone()[0]
    return matched, unmatched


def _per_audience(cursor) -> dict[int, int]:
    return dict(cursor.fetchall())


# The audiences replace mode replaces: those the file names in which at least one line
# matched someone (a file whose lines for an audience all match nobody never empties it).
_REPLACED = sql.SQL(
    "a.no = a.canon AND EXISTS (SELECT 1 FROM {resolved} hit "
    "WHERE hit.aud_no = a.no AND hit.person_id IS NOT NULL)"
)


def remove_absent(cursor, t: Tables) -> dict[int, int]:
    """Replace mode: DELETE the members of the file's audiences that the file does not
    name (whoever added them); returns how many went, per audience."""
    _execute(
        cursor,
        sql.SQL(
            """
            WITH gone AS (
                DELETE FROM audiences_audiencemember m
                USING {aud} a
                WHERE m.audience_id = a.audience_id AND {replaced}
                  AND NOT EXISTS (
                      SELECT 1 FROM {resolved} r
                      WHERE r.aud_no = a.no AND r.person_id = m.person_id
                  )
                RETURNING m.audience_id
            )
            SELECT audience_id, count(*) FROM gone GROUP BY audience_id
            """
        ).format(replaced=_REPLACED.format(**t.ids()), **t.ids()),
    )
    return _per_audience(cursor)


def count_absent(cursor, t: Tables) -> int:
    """What remove_absent() would delete."""
    _execute(
        cursor,
        sql.SQL(
            """
            SELECT count(*) FROM audiences_audiencemember m
            JOIN {aud} a ON m.audience_id = a.audience_id
            WHERE {replaced} AND NOT EXISTS (
                SELECT 1 FROM {resolved} r WHERE r.aud_no = a.no AND r.person_id = m.person_id
            )
            """
        ).format(replaced=_REPLACED.format(**t.ids()), **t.ids()),
    )
    return cursor.fetchone()[0]


_ADD_MEMBERS = """
    WITH added AS (
        INSERT INTO audiences_audiencemember
            (workspace_id, audience_id, person_id, source, added_at)
        SELECT DISTINCT ON (r.person_id, a.audience_id)
               %(ws)s::bigint, a.audience_id, r.person_id, %(source)s, %(now)s::timestamptz
        FROM {resolved} r JOIN {aud} a ON a.no = r.aud_no
        WHERE r.person_id IS NOT NULL AND {new}
        ORDER BY r.person_id, a.audience_id
        {on_conflict}
        RETURNING audience_id
    )
    SELECT audience_id, count(*) FROM added GROUP BY audience_id
"""
_ON_CONFLICT = "ON CONFLICT (audience_id, person_id) DO NOTHING"
# A pair is new when its audience was created by this job, or when it has no row yet.
# An anti-join against the members of the audiences that existed before the job (their
# ids a parameter): the planner reads just those audiences' members (by the key), never
# the rest of the table, and the audiences the job created are not looked up at all.
_NOT_YET_MEMBER = sql.SQL(
    "NOT EXISTS (SELECT 1 FROM audiences_audiencemember m "
    "WHERE m.audience_id = a.audience_id AND m.person_id = r.person_id "
    "AND m.audience_id = ANY(%(existing)s::bigint[]))"
)


def add_members(cursor, t: Tables, *, workspace_id: int, now) -> dict[int, int]:
    """ONE INSERT ... SELECT of every matched (audience, person) pair that is not a
    membership yet; returns how many were added, per audience. Sorted by person, so both
    membership indexes walk their pages in order.

    The pairs already in the table are left out by an anti-join (none for the audiences
    this job created), which costs far less than ON CONFLICT's speculative insertion of
    every row. Should another transaction add one of the pairs meanwhile (the People
    page, a segment, the API: they do not take the import's lock), the insert fails on
    the key; it is then repeated with ON CONFLICT DO NOTHING."""
    _execute(
        cursor,
        sql.SQL(
            "SELECT coalesce(array_agg(audience_id), '{{}}') FROM {aud} "
            "WHERE NOT created AND audience_id IS NOT NULL"
        ).format(**t.ids()),
    )
    existing = cursor.fetchone()[0]
    params = {"ws": workspace_id, "source": MemberSource.IMPORT, "now": now, "existing": existing}

    def insert(*, new, on_conflict) -> dict[int, int]:
        query = sql.SQL(_ADD_MEMBERS).format(new=new, on_conflict=sql.SQL(on_conflict), **t.ids())
        _execute(cursor, query, params)
        return _per_audience(cursor)

    try:
        with transaction.atomic():
            return insert(new=_NOT_YET_MEMBER, on_conflict="")
    except (IntegrityError, psycopg_errors.UniqueViolation):
        return insert(new=sql.SQL("true"), on_conflict=_ON_CONFLICT)


def apply_counts(cursor, deltas: dict[int, int], *, now) -> None:
    """Move each audience's stored member count by its delta (one UPDATE). A row lock
    per audience, so a concurrent change of the same audience's count waits and then
    adds its own delta to this one."""
    changed = {audience: n for audience, n in deltas.items() if n}
    if not changed:
        return
    _execute(
        cursor,
        "UPDATE audiences_targetaudience ta "
        "SET people_count = ta.people_count + d.n, updated_at = %(now)s "
        "FROM unnest(%(ids)s::bigint[], %(ns)s::bigint[]) AS d(id, n) WHERE ta.id = d.id",
        {"ids": list(changed), "ns": list(changed.values()), "now": now},
    )


def count_new(cursor, t: Tables) -> int:
    """What add_members() would insert."""
    _execute(
        cursor,
        sql.SQL(
            """
            SELECT count(*) FROM (
                SELECT DISTINCT a.no, r.person_id
                FROM {resolved} r JOIN {aud} a ON a.no = r.aud_no
                WHERE r.person_id IS NOT NULL
                  AND (a.audience_id IS NULL OR NOT EXISTS (
                      SELECT 1 FROM audiences_audiencemember m
                      WHERE m.audience_id = a.audience_id AND m.person_id = r.person_id
                  ))
            ) n
            """
        ).format(**t.ids()),
    )
    return cursor.fetchone()[0]


def problems_query(t: Tables, *, with_resolved: bool) -> sql.Composed:
    """(line, raw, reason, repeats) of every row in error, in file order: unreadable rows
    (reason set) and, once resolved, the first line of every unmatched entry (reason
    NULL, the caller words it)."""
    ids = t.ids()
    invalid = sql.SQL(
        "SELECT line, raw, reason, 1::bigint AS repeats FROM {stage} WHERE reason IS NOT NULL"
    ).format(**ids)
    if not with_resolved:
        return invalid + sql.SQL(" ORDER BY line")
    return invalid + sql.SQL(
        " UNION ALL SELECT r.line, s.raw, NULL, r.n FROM {resolved} r "
        "JOIN {stage} s ON s.line = r.line WHERE r.person_id IS NULL ORDER BY 1"
    ).format(**ids)
