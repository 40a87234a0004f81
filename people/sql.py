"""One set-based write shape shared by every membership table: rows for a set of people
in one INSERT ... SELECT over the ORM's own (parameterized) query of those people."""

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import QuerySet


def insert_for_people(
    *, table: str, columns: str, values: str, params: list, people: QuerySet, on_conflict: str
) -> int:
    """INSERT INTO table (columns) SELECT values FROM (people's ids) AS p ... ; returns the
    rows written. `values` refers to the person's id as p.id; only our own identifiers
    are formatted into the SQL, user values travel as parameters."""
    try:
        ids_sql, ids_params = people.order_by().values("id").query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nobody (e.g. an empty id list)
        return 0
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {values} "  # noqa: S608
        f"FROM ({ids_sql}) AS p WHERE true {on_conflict}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *ids_params])
        return cursor.rowcount


def execute_arrays(sql: str, params: list) -> list[tuple]:
    """Run `sql` (with %s placeholders) on Django's connection, inside its transaction,
    with the parameters bound server-side in binary: for the statements that send a batch
    as arrays (UPDATE / INSERT ... FROM unnest). Django's client-side binding quotes each
    element of each array in Python (45 of a request's 340 ms for 1,000 people); binary
    dumping is psycopg's C code. Returns the rows, if the statement returns any."""
    import psycopg

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall() if cursor.description else []
