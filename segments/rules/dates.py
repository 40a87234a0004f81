"""Calendar arithmetic of the date operators.

"Today" is the date in the workspace's time zone; weeks are 7 days; months are calendar
months, the day clamped to the month's length (31 January + 1 month = 28 or 29 February).
Each operator becomes constraints the date part must all meet, e.g. `was_within 7 days`
on 2026-11-25 is [(">=", 2026-11-18), ("<=", 2026-11-25)].
"""

import calendar
from datetime import date, timedelta

from segments.rules.schema import RelativeDate

DateConstraint = tuple[str, date]  # (comparison: "=", "<", "<=", ">=" or ">", date)

ABSOLUTE_COMPARISONS = {"before": "<", "until": "<=", "since": ">=", "after": ">"}


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months (negative goes back), clamped to the month's end."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def shift(day: date, amount: int, unit: str) -> date:
    """`day` moved by `amount` days, weeks or months (negative goes back)."""
    if unit == "months":
        return add_months(day, amount)
    if unit == "weeks":
        return day + timedelta(weeks=amount)
    return day + timedelta(days=amount)


def relative_constraints(op: str, value: RelativeDate, today: date) -> tuple[DateConstraint, ...]:
    """What the date part must satisfy for a relative date operator (shared/API.md)."""
    future = shift(today, value.amount, value.unit)
    past = shift(today, -value.amount, value.unit)
    return {
        "will_be_in": (("=", future),),
        "was": (("=", past),),
        "will_be_within": ((">=", today), ("<=", future)),
        "was_within": ((">=", past), ("<=", today)),
        "will_be_more_than": ((">", future),),
        "was_more_than": (("<", past),),
    }[op]
