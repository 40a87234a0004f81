"""TEMP staging tables filled with COPY, and the set-based SQL that resolves who is who.

Staging tables are TEMP: private to the job's database session, never WAL-logged, gone
with the session if the worker dies. Nothing outside them is written before the merge
transaction, which is what makes a failed or interrupted import change nothing.
"""

import logging
from contextlib import AbstractContextManager, suppress

from django.db import DatabaseError
from psycopg import DatabaseError as PsycopgError
from psycopg import sql

from people.imports.rows import STAGE_COLUMNS

# Sorting a million staged rows for DISTINCT ON fits in memory with this much (the
# default 4 MB spills to disk); set with SET LOCAL, so only for the job's transaction.
SORT_WORK_MEM = "256MB"

logger = logging.getLogger(__name__)

_COLUMN_TYPES = {"line": "bigint NOT NULL", "key": "text NOT NULL", "attributes": "jsonb"}


def table_names(import_id: int, purpose: str) -> tuple[str, str]:
    """(staging table, resolved table) for one job; purpose is 'analyze' or 'run'."""
    return (
        f"contact_import_{import_id}_{purpose}_stage",
        f"contact_import_{import_id}_{purpose}_final",
    )


class Stage:
    """One TEMP table written with COPY in chunks.

    Each chunk is one COPY statement, so between chunks the connection is free for the
    progress update (a COPY in flight blocks every other statement on its connection).
    """

    def __init__(self, cursor, name: str, columns: list[str] | None = None):
        self.cursor = cursor
        self.name = name
        self.columns = columns or STAGE_COLUMNS
        self.rows = 0
        self._copy_cm: AbstractContextManager | None = None
        self._copy = None

    def create(self) -> None:
        self.drop()
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_COLUMN_TYPES.get(c, "text")))
            for c in self.columns
        )
        self.cursor.execute(
            sql.SQL("CREATE TEMP TABLE {} ({})").format(sql.Identifier(self.name), columns)
        )

    def write_data(self, data: bytes, rows: int) -> None:
        """Append rows already in COPY's text format (see checking.copy_line)."""
        if not data:
            return
        if self._copy is None:
            self._copy_cm = self.cursor.copy(
                sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(self.name),
                    sql.SQL(", ").join(sql.Identifier(c) for c in self.columns),
                )
            )
            self._copy = self._copy_cm.__enter__()
        self._copy.write(data)
        self.rows += rows

    def flush(self) -> None:
        """End the COPY in flight (if any), making the rows so far part of the table."""
        if self._copy_cm is not None:
            cm, self._copy_cm, self._copy = self._copy_cm, None, None
            cm.__exit__(None, None, None)

    def abort(self) -> None:
        """Stop writing after a failure elsewhere. The COPY in flight is ended normally,
        not failed: failing it would abort an enclosing transaction, and the rows it
        carried only reach this TEMP table, which is dropped next."""
        if self._copy_cm is not None:
            cm, self._copy_cm, self._copy = self._copy_cm, None, None
            with suppress(Exception):  # the connection may be what failed
                cm.__exit__(None, None, None)

    def analyze(self) -> None:
        """Table statistics, so the planner joins a million staged rows with hashes."""
        self.cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(self.name)))

    def drop(self) -> None:
        self.cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.name)))


def resolve(cursor, *, stage: str, final: str, workspace_id: int, dedupe: str) -> None:
    """CREATE TEMP TABLE `final`: one row per person the file names, with `target`, the
    external_id of the person the row is merged into, physically sorted by target.

    - Rows with the same key (external_id, email or phone, as chosen) count once: the
      last one in the file wins.
    - By email or phone, a row matches the oldest person of the workspace with that
      address; else the person with the row's external_id; else it makes a new person
      whose external_id is the row's, or, if it has none, the address itself.
    - Two rows that end up on the same person count once (the last wins), because one
      INSERT ... ON CONFLICT DO UPDATE may touch a row only once.
    """
    cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(final)))
    if dedupe == "external_id":
        query = sql.SQL(
            "CREATE TEMP TABLE {final} AS "
            "SELECT DISTINCT ON (s.key) s.*, s.key AS target FROM {stage} s "
            "ORDER BY s.key, s.line DESC"
        ).format(final=sql.Identifier(final), stage=sql.Identifier(stage))
        cursor.execute(query)
    else:
        field = sql.Identifier(dedupe)  # email or phone: a column of people_person
        query = sql.SQL(
            """
            CREATE TEMP TABLE {final} AS
            WITH by_key AS MATERIALIZED (
                SELECT DISTINCT ON (s.key) s.* FROM {stage} s ORDER BY s.key, s.line DESC
            ),
            matched AS (
                SELECT DISTINCT ON (p.{field}) p.{field} AS address, p.external_id
                FROM people_person p
                WHERE p.workspace_id = %(ws)s
                  AND p.{field} IN (SELECT b.key FROM by_key b)
                ORDER BY p.{field}, p.id
            )
            SELECT DISTINCT ON (r.target) r.* FROM (
                SELECT b.*, COALESCE(m.external_id, b.external_id, b.key) AS target
                FROM by_key b LEFT JOIN matched m ON m.address = b.key
            ) r
            ORDER BY r.target, r.line DESC
            """
        ).format(final=sql.Identifier(final), stage=sql.Identifier(stage), field=field)
        cursor.execute(query, {"ws": workspace_id})
    cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(final)))


def drop_quietly(cursor, *names: str) -> None:
    """Drop staging tables; they die with the session anyway, so a failure here (the
    connection may be broken: that may be why we are here) must not hide the real error."""
    for name in names:
        try:
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        except (DatabaseError, PsycopgError):
            logger.warning("could not drop the staging table %s", name, exc_info=True)


def count_rows(cursor, table: str) -> int:
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    return cursor.fetchone()[0]


def count_existing(cursor, *, final: str, workspace_id: int) -> int:
    """How many of the resolved rows name a person who already exists."""
    cursor.execute(
        sql.SQL(
            "SELECT count(*) FROM {final} f WHERE EXISTS ("
            " SELECT 1 FROM people_person p"
            " WHERE p.workspace_id = %(ws)s AND p.external_id = f.target)"
        ).format(final=sql.Identifier(final)),
        {"ws": workspace_id},
    )
    return cursor.fetchone()[0]


def set_sort_memory(cursor) -> None:
    """Inside a transaction: room for the DISTINCT ON sorts."""
    cursor.execute(sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(SORT_WORK_MEM)))
