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
# 31-day months, 29 February in leap years only, no year 0. Written for PostgreSQL's regex
# engine, which builds its automaton anew on every call: [0-9] rather than \d (a locale's
# digit class, the casts take ASCII digits only) and no lookahead, 1.5-2x cheaper per value.
_D = "[0-9]"
_YEAR = f"(?:[1-9]{_D}{{3}}|0[1-9]{_D}{{2}}|00[1-9]{_D}|000[1-9])"  # 0001-9999
_DAY = (
    f"(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]{_D}|3[01])"
    f"|(?:0[469]|11)-(?:0[1-9]|[12]{_D}|30)|02-(?:0[1-9]|1{_D}|2[0-8]))"
    # leap years: every 4th year of a century but its year 00, and years divisible by 400
    f"|(?:{_D}{_D}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)-02-29)"
)
_TIME = f"[T ](?:[01]{_D}|2[0-3]):[0-5]{_D}(?::[0-5]{_D}(?:\\.{_D}{{1,6}})?)?"
_OFFSET = f"(?:Z|[+-](?:0{_D}|1[0-5])(?::?[0-5]{_D})?)"  # PostgreSQL takes offsets up to 15:59
DATE_OR_DATETIME = f"^{_DAY}(?:{_TIME}{_OFFSET}?)?$"
TIME_AND_OFFSET = f"^{_TIME}{_OFFSET}?$"  # what follows the day in a datetime


def local_date(text: Expression, time_zone: str, days: list[str] | None = None) -> Sql:
    """The date part, in `time_zone`, of a date or ISO 8601 datetime held as text; NULL for
    anything else.

    A datetime with an offset is an instant, seen from the workspace's time zone; one without
    is already the workspace's wall-clock time, so its first ten characters are its date.
    The pattern guards the casts (PostgreSQL 15 has no pg_input_is_valid): a value of another
    type, left over from before an attribute's type changed, must not fail the whole query.
    CASE is the one construct whose order of evaluation PostgreSQL promises.

    `days` (ISO texts of consecutive days), when given, promises that the caller only asks
    about texts whose first ten characters sort within them (see the compiler's
    _text_date_predicate): such a text starts with a real day exactly when its first ten
    characters are one of `days`, a hash lookup, and only the rest goes through a pattern.

    Once the text is known to be a date or datetime, it is a date (ten characters) or a
    datetime whose offset, if any, ends it: "Z", or a sign in its last six characters, which
    are all part of the time (a datetime has at least 16). Plain string functions tell them
    apart: a second regular expression would cost as much as the first.
    """
    if days is None:
        valid, params = "{t} ~ %s", [DATE_OR_DATETIME]
    else:
        valid = "left({t}, 10) = ANY(%s::text[]) AND (length({t}) = 10 OR substr({t}, 11) ~ %s)"
        params = [days, TIME_AND_OFFSET]
    return Sql(
        f"CASE WHEN NOT ({valid}) THEN NULL"
        " WHEN length({t}) > 10 AND (right({t}, 1) = 'Z' OR strpos(right({t}, 6), '+') > 0"
        " OR strpos(right({t}, 6), '-') > 0) THEN (({t})::timestamptz AT TIME ZONE %s)::date"
        " ELSE (left({t}, 10))::date END",
        *params,
        time_zone,
        t=text,
        output_field=DateField(),
    )
