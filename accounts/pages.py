"""Keyset pages of the UI lists: ?after=<id> for the next page, ?before=<id> for the one
before, never OFFSET (a deep page costs what the first one does).

The API's cursor pagination is config/api.py; this is the web pages' one kernel (STYLE
rule 18). It lives in the lowest app so that every app's pages can use it.
"""

from dataclasses import dataclass

from django.db.models import Q, QuerySet


@dataclass(frozen=True)
class Page:
    """One page of rows; next_key / prev_key are the ids for ?after= / ?before= links,
    None when there is no page that way."""

    items: list
    next_key: int | None
    prev_key: int | None


def _past(order: tuple[str, ...], values: tuple, *, forward: bool) -> Q:
    """The rows after `values` in `order` (forward) or before them: a lexicographic
    comparison, written as an OR of prefixes so it rides the list's index."""
    condition = Q()
    for i, name in enumerate(order):
        field = name.lstrip("-")
        descending = name.startswith("-") == forward
        step = Q(**{f"{field}__{'lt' if descending else 'gt'}": values[i]})
        for earlier, value in zip(order[:i], values[:i], strict=True):
            step &= Q(**{earlier.lstrip("-"): value})
        condition |= step
    return condition


def _reversed(order: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name[1:] if name.startswith("-") else f"-{name}" for name in order)


def keyset_page(
    queryset: QuerySet,
    *,
    order: tuple[str, ...] = ("-id",),
    after: int | None = None,
    before: int | None = None,
    size: int = 50,
    bounded: bool = False,
) -> Page:
    """The page of `queryset` in `order` (ending with "id" or "-id") that follows the row
    `after`, precedes the row `before` (after wins when both are given), or the first
    page. One query (two when the order has more than the id: the key row's values are
    read first; a key not in `queryset` then gives the first page).

    `bounded`: the queryset already keeps only the rows past the key (a selector that
    puts the bound where its query plan needs it, e.g. audience_members); the page is
    then only ordered and sliced. Only for an order by id alone.
    """
    if after is not None:
        before = None
    key = after if after is not None else before
    if key is not None and not bounded:
        if len(order) == 1:
            values = (key,)
        else:
            fields = [name.lstrip("-") for name in order]
            values = queryset.filter(pk=key).values_list(*fields).first()
        if values is None:
            key = after = before = None
        else:
            queryset = queryset.filter(_past(order, values, forward=after is not None))
    if key is None:
        rows = list(queryset.order_by(*order)[: size + 1])
        has_next, has_prev = len(rows) > size, False
        rows = rows[:size]
    elif after is not None:
        rows = list(queryset.order_by(*order)[: size + 1])
        has_next, has_prev = len(rows) > size, True
        rows = rows[:size]
    else:
        rows = list(queryset.order_by(*_reversed(order))[: size + 1])
        has_prev, has_next = len(rows) > size, True
        rows = list(reversed(rows[:size]))
    return Page(
        items=rows,
        next_key=rows[-1].pk if rows and has_next else None,
        prev_key=rows[0].pk if rows and has_prev else None,
    )
