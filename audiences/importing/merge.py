"""The TEMP tables of one job and the set-based SQL that turns them into memberships.

    stage     (line, key, audience, raw, reason): one row per data row of the file, filled
              with COPY; `reason` is set for a row that cannot be read.
    aud       (no, lkey, name, first_line, audience_id): one row per audience the file
              names (per_row) or the job's audience (single); audience_id NULL while the
              audience does not exist.
    resolved  (aud_no, key, line, n, person_id): the file's distinct (audience, identifier)
              entries joined to people; person_id NULL for an identifier nobody has; `line`
              is the first line of the entry and `n` how many lines repeat it.

Everything here runs inside the job's merge transaction, except create_stage(). A dry run
runs the same statements up to `resolved`, then only counts (it inserts nothing, not even
into the TEMP tables' neighbours), so it takes no lock a real import would wait for.
"""

from contextlib import suppress
from dataclasses import dataclass, field

from psycopg import sql

from audiences.models import Identifier, MemberSource

# Sorting and hashing a million staged rows fits in memory with this much (the default
# 4 MB spills to disk); SET LOCAL, so only for the job's transaction.
WORK_MEM = "256MB"
STAGE_COLUMNS = sql.SQL(
    "line bigint NOT NULL, key text NOT NULL, audience text, raw text, reason text"
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
                sql.SQL("COPY {} (line, key, audience, raw, reason) FROM STDIN").format(self.name)
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
    audience_ids: list[int] = field(default_factory=list)


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


def build_audiences(cursor, t: Tables, *, workspace_id: int, single_name: str | None) -> None:
    """CREATE the aud table: the audiences the valid rows name, with the existing ones'
    ids. In per_row mode the name an audience gets is its spelling on its first line;
    names compare case-insensitively, as TargetAudience's unique constraint does."""
    ids = t.ids()
    _execute(cursor, sql.SQL("DROP TABLE IF EXISTS {aud}").format(**ids))
    if single_name is not None:
        _execute(
            cursor,
            sql.SQL(
                "CREATE TEMP TABLE {aud} AS SELECT 1::int AS no, lower(%(name)s) AS lkey, "
                "%(name)s::text AS name, 0::bigint AS first_line, NULL::bigint AS audience_id"
            ).format(**ids),
            {"name": single_name},
        )
    else:
        _execute(
            cursor,
            sql.SQL(
                """
                CREATE TEMP TABLE {aud} AS
                WITH firsts AS (
                    SELECT lower(audience) AS lkey, min(line) AS first_line
                    FROM {stage} WHERE reason IS NULL GROUP BY lower(audience)
                )
                SELECT (row_number() OVER (ORDER BY f.first_line))::int AS no, f.lkey,
                       s.audience AS name, f.first_line, NULL::bigint AS audience_id
                FROM firsts f JOIN {stage} s ON s.line = f.first_line
                """
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
                FROM {aud} a WHERE a.audience_id IS NULL ORDER BY a.first_line
                ON CONFLICT DO NOTHING
                RETURNING name
            )
            SELECT c.name FROM created c JOIN {aud} a ON a.lkey = lower(c.name)
            ORDER BY a.first_line
            """
        ).format(**t.ids()),
        {"ws": workspace_id, "now": now},
    )
    names = [row[0] for row in cursor.fetchall()]
    # An audience another transaction created meanwhile (ON CONFLICT skipped it) is found
    # here too, since that transaction has committed by now.
    _set_existing_ids(cursor, t, workspace_id=workspace_id)
    return names


def would_create(cursor, t: Tables) -> list[str]:
    _execute(
        cursor,
        sql.SQL("SELECT name FROM {aud} WHERE audience_id IS NULL ORDER BY first_line").format(
            **t.ids()
        ),
    )
    return [row[0] for row in cursor.fetchall()]


def resolve(cursor, t: Tables, *, workspace_id: int, identifier: str, single: bool) -> None:
    """CREATE the resolved table: one row per distinct (audience, identifier) entry and
    person it names (an email or phone may name several people), or one row with
    person_id NULL for an identifier nobody in the workspace has."""
    ids = t.ids()
    _execute(cursor, sql.SQL("DROP TABLE IF EXISTS {resolved}").format(**ids))
    audience_join = (
        sql.SQL("CROSS JOIN {aud} a").format(**ids)
        if single
        else sql.SQL("JOIN {aud} a ON a.lkey = lower(s.audience)").format(**ids)
    )
    _execute(
        cursor,
        sql.SQL(
            """
            CREATE TEMP TABLE {resolved} AS
            SELECT a.no AS aud_no, s.key, min(s.line) AS line, count(*) AS n,
                   p.id AS person_id
            FROM {stage} s
            {audience_join}
            LEFT JOIN people_person p ON p.workspace_id = %(ws)s AND {match}
            WHERE s.reason IS NULL
            GROUP BY a.no, s.key, p.id
            """
        ).format(audience_join=audience_join, match=_PERSON_MATCH[identifier], **ids),
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


def audience_ids(cursor, t: Tables) -> list[int]:
    _execute(
        cursor,
        sql.SQL("SELECT audience_id FROM {aud} WHERE audience_id IS NOT NULL").format(**t.ids()),
    )
    return [row[0] for row in cursor.fetchall()]


def remove_absent(cursor, t: Tables) -> int:
    """Replace mode: DELETE the members of the file's audiences that the file does not
    name (whoever added them)."""
    _execute(
        cursor,
        sql.SQL(
            """
            DELETE FROM audiences_audiencemember m
            USING {aud} a
            WHERE m.audience_id = a.audience_id
              AND NOT EXISTS (
                  SELECT 1 FROM {resolved} r
                  WHERE r.aud_no = a.no AND r.person_id = m.person_id
              )
            """
        ).format(**t.ids()),
    )
    return cursor.rowcount


def count_absent(cursor, t: Tables) -> int:
    """What remove_absent() would delete."""
    _execute(
        cursor,
        sql.SQL(
            """
            SELECT count(*) FROM audiences_audiencemember m
            JOIN {aud} a ON m.audience_id = a.audience_id
            WHERE NOT EXISTS (
                SELECT 1 FROM {resolved} r WHERE r.aud_no = a.no AND r.person_id = m.person_id
            )
            """
        ).format(**t.ids()),
    )
    return cursor.fetchone()[0]


def add_members(cursor, t: Tables, *, workspace_id: int, now) -> int:
    """ONE INSERT ... SELECT of every matched (audience, person) pair; returns how many
    were not members yet. Sorted by person so both membership indexes and the person
    foreign-key checks walk their pages in order."""
    _execute(
        cursor,
        sql.SQL(
            """
            INSERT INTO audiences_audiencemember
                (workspace_id, audience_id, person_id, source, added_at)
            SELECT DISTINCT ON (r.person_id, a.audience_id)
                   %(ws)s::bigint, a.audience_id, r.person_id, %(source)s, %(now)s::timestamptz
            FROM {resolved} r JOIN {aud} a ON a.no = r.aud_no
            WHERE r.person_id IS NOT NULL
            ORDER BY r.person_id, a.audience_id
            ON CONFLICT (audience_id, person_id) DO NOTHING
            """
        ).format(**t.ids()),
        {"ws": workspace_id, "source": MemberSource.IMPORT, "now": now},
    )
    return cursor.rowcount


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
