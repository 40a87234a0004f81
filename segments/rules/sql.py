"""SQL building blocks the compiler needs and Django does not ship.

Templates are constants of this package; values only ever travel as query parameters.
Every boolean built here is two-valued (true or false, never NULL): a condition sits under
NOT as easily as under AND, and NOT NULL would drop the person instead of keeping them.
"""

import re

from django.db.models import BooleanField, DateField, Expression, F, JSONField, TextField

_SLOT = re.compile(r"\{(\w+)\}|%s")


class Sql(Expression):
    """A SQL template: `{name}` slots take compiled expressions, `%s` slots take parameters.

    Sql("({doc} -> %s::text)", "plan", doc=F("attributes"), output_field=JSONField())
    """

    def __init__(self, template: str, *params, output_field, **expressions):
        super().__init__(output_field=output_field)
        if template.count("%s") != len(params):
            raise ValueError("a Sql template needs one parameter per %s")
        self.template = template
        self.params = params
        self.names = list(expressions)
        self.expressions = [
            F(value) if isinstance(value, str) else value for value in expressions.values()
        ]

    def get_source_expressions(self):
        return list(self.expressions)

    def set_source_expressions(self, exprs):
        self.expressions = list(exprs)

    def as_sql(self, compiler, connection):
        compiled = {
            name: compiler.compile(expression)
            for name, expression in zip(self.names, self.expressions, strict=True)
        }
        pieces, params = [], []
        values = iter(self.params)
        position = 0
        for slot in _SLOT.finditer(self.template):
            pieces.append(self.template[position : slot.start()])
            if slot.group(1):
                sql, sql_params = compiled[slot.group(1)]
                pieces.append(sql)
                params.extend(sql_params)
            else:
                pieces.append("%s")
                params.append(next(values))
            position = slot.end()
        pieces.append(self.template[position:])
        return "".join(pieces), params


def predicate(template: str, *params, **expressions) -> Sql:
    """A boolean Sql usable directly in filter(), Q() and annotations."""
    return Sql(template, *params, output_field=BooleanField(), **expressions)


def json_value(document: str, key: str) -> Sql:
    """`document -> key` (jsonb). The key is always text: Django's KeyTransform turns
    digit-only keys into array indexes, and event properties may well be called "2024"."""
    return Sql("({doc} -> %s::text)", key, doc=document, output_field=JSONField())


def json_text(document: str, key: str) -> Sql:
    """`document ->> key`: the value as text (a JSON string without its quotes)."""
    return Sql("({doc} ->> %s::text)", key, doc=document, output_field=TextField())


# A real calendar day, so the ::date and ::timestamptz casts below can never fail: 30- and
# 31-day months, 29 February in leap years only, no year 0.
_DAY = (
    r"(?!0000)(?:\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))"
    r"|(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
)
_TIME = r"[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?"
_OFFSET = r"(?:Z|[+-](?:0\d|1[0-5])(?::?[0-5]\d)?)"  # PostgreSQL takes offsets up to 15:59
DATE_OR_DATETIME = f"^{_DAY}(?:{_TIME}{_OFFSET}?)?$"
HAS_OFFSET = f"{_TIME}{_OFFSET}$"  # on the time: "2026-11-05" ends in "-05" too


def local_date(text: Expression, time_zone: str) -> Sql:
    """The date part, in `time_zone`, of a date or ISO 8601 datetime held as text; NULL for
    anything else.

    A datetime with an offset is an instant, seen from the workspace's time zone; one without
    is already the workspace's wall-clock time, so its first ten characters are its date.
    The pattern guards the casts (PostgreSQL 15 has no pg_input_is_valid): a value of another
    type, left over from before an attribute's type changed, must not fail the whole query.
    CASE is the one construct whose order of evaluation PostgreSQL promises.
    """
    return Sql(
        "CASE WHEN NOT ({t} ~ %s) THEN NULL"
        " WHEN {t} ~ %s THEN (({t})::timestamptz AT TIME ZONE %s)::date"
        " ELSE (left({t}, 10))::date END",
        DATE_OR_DATETIME,
        HAS_OFFSET,
        time_zone,
        t=text,
        output_field=DateField(),
    )
