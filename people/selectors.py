"""Reads about people, their events, tags and Do Not Contact entries."""

import contextlib
from dataclasses import dataclass, field

from django.core.exceptions import EmptyResultSet
from django.db.models import CharField, Count, Exists, Func, OuterRef, Q, QuerySet, Sum, Value
from django.db.models.functions import Collate, Lower, Upper
from django.http import Http404

from people.models import (
    AttributeDefinition,
    Company,
    ContactChannel,
    DoNotContact,
    Event,
    EventType,
    Person,
    PersonTag,
    PushToken,
    Tag,
)
from people.normalize import InvalidAddress, normalize_address


def person_list(
    *, workspace, q: str | None = None, tags: list[str] | None = None, company: str | None = None
) -> QuerySet[Person]:
    """People of the workspace, newest first.

    `q` matches the start of a name, email or external id, or a phone (person_search);
    `tags` keeps people having every one of the tags (names, case-insensitive).
    """
    people = Person.objects.for_workspace(workspace).select_related("company").order_by("-id")
    if q and q.strip():
        people = person_search(people, q)
    for name in tags or []:
        # The tag's ids are read first (one small query per tag): given them, the planner
        # knows from the column statistics how many people have the tag and merges two
        # index-only scans; joined on the name, it guessed and probed people one by one
        # (~0.5 s to count a city + tag at 1M people: benchmarks/people_page.py).
        tag_ids = list(
            Tag.objects.for_workspace(workspace)
            .filter(name__iexact=name)
            .values_list("id", flat=True)
        )
        has_tag = PersonTag.objects.filter(workspace=workspace, person=OuterRef("pk"))
        # No such tag: the condition on the name, which matches nobody, keeps the query valid.
        has_tag = (
            has_tag.filter(tag_id__in=tag_ids)
            if tag_ids
            else has_tag.filter(tag__name__iexact=name)
        )
        people = people.filter(Exists(has_tag))
    if company:
        people = people.filter(company__name=company)
    return people


class Fold(Func):
    """herald_fold(text): lower case without accents (people migration 0008), what the
    search compares, through the indexes built on it."""

    function = "public.herald_fold"
    output_field = CharField()


def person_search(people: QuerySet[Person], q: str) -> QuerySet[Person]:
    """`people` whose first or last name, email or external id starts with `q` (any case,
    any accents: "muller" finds Müller), or whose phone is `q` written as a number; a
    first and last name ("ana gar") match together. Each part is served by an index."""
    q = q.strip()
    prefix = Fold(Value(q))
    condition = (
        Q(email__startswith=q.lower())
        | Q(_external_id_lower__startswith=q.lower())
        | Q(_first_folded__startswith=prefix)
        | Q(_last_folded__startswith=prefix)
    )
    with contextlib.suppress(InvalidAddress):
        condition |= Q(phone=normalize_address("sms", q))
    parts = q.split()
    if len(parts) >= 2:
        condition |= Q(_first_folded__startswith=Fold(Value(parts[0]))) & Q(
            _last_folded__startswith=Fold(Value(" ".join(parts[1:])))
        )
    return people.alias(
        _external_id_lower=Lower("external_id"),
        _first_folded=Fold("first_name"),
        _last_folded=Fold("last_name"),
    ).filter(condition)


@dataclass(frozen=True)
class PersonSort:
    """One order of the People page: the column it sorts by, its direction, and the
    keyset order (ending with the id) an index serves at a million people."""

    key: str
    column: str
    descending: bool
    order: tuple[str, ...]


def _sorts() -> dict[str, PersonSort]:
    columns = {
        # newest first is the page's default: the id is the order of creation
        "created": ("id",),
        # the unique (workspace, external_id) index, then the id (an incremental sort of
        # groups of one row)
        "external_id": ("external_id", "id"),
        # person_ws_name_sort / person_ws_email_sort (migration 0009); the names folded
        # like the search (Müller beside muller), compared byte-wise as the index is
        "name": ("_sort_first", "_sort_last", "id"),
        "email": ("_sort_email", "id"),
        # person_ws_upper_city_id (migration 0004), the city quick filter's index
        "city": ("_sort_city", "id"),
    }
    sorts = {}
    for column, order in columns.items():
        sorts[column] = PersonSort(column, column, False, order)
        sorts[f"-{column}"] = PersonSort(f"-{column}", column, True, tuple(f"-{f}" for f in order))
    return sorts


PERSON_SORTS = _sorts()
DEFAULT_PERSON_SORT = PERSON_SORTS["-created"]


def person_sort(key: str | None) -> PersonSort:
    """The People page's order named by ?sort= (an unknown one gives the default)."""
    return PERSON_SORTS.get(key or "", DEFAULT_PERSON_SORT)


_SORT_VALUES = {
    "_sort_first": lambda: Collate(Fold("first_name"), "C"),
    "_sort_last": lambda: Collate(Fold("last_name"), "C"),
    "_sort_email": lambda: Collate("email", "C"),
    "_sort_city": lambda: Upper("city"),
}


def sorted_people(people: QuerySet[Person], sort: PersonSort) -> QuerySet[Person]:
    """`people` with the values `sort.order` names, for keyset_page (which reads the key
    row's values, so they are annotations, not aliases); not yet ordered."""
    names = [name.lstrip("-") for name in sort.order if name.lstrip("-") in _SORT_VALUES]
    return people.annotate(**{name: _SORT_VALUES[name]() for name in names}) if names else people


def person_recent(*, workspace, limit: int = 5) -> list[Person]:
    return list(person_list(workspace=workspace)[:limit])


def get_person_or_404(*, workspace, external_id: str) -> Person:
    try:
        return (
            Person.objects.for_workspace(workspace)
            .select_related("company")
            .get(external_id=external_id)
        )
    except Person.DoesNotExist:
        raise Http404(f"No person with external_id {external_id!r}.") from None


def person_ref(*, workspace, external_id: str) -> Person | None:
    """The person of `external_id` with only its id and creation loaded (other fields load
    when read), or None: for the membership lookups an app makes on every page view, one
    raw query by the (workspace, external_id) index, without the ORM's compiling."""
    return next(
        iter(
            Person.objects.raw(
                "SELECT id, workspace_id, external_id, created_at FROM people_person "
                "WHERE workspace_id = %s AND external_id = %s",
                [workspace.pk, external_id],
            )
        ),
        None,
    )


def external_ids_with_address(
    *, workspace, channel: str, address: str, limit: int = 100
) -> list[str]:
    """The external ids of the people reachable at `address` (an email or an E.164 phone,
    normalized as stored) on `channel`: whom an inbound message is from."""
    column = {"email": "email", "sms": "phone"}.get(channel)
    if column is None or not address:
        return []
    people = Person.objects.for_workspace(workspace).filter(**{column: address})
    return list(people.order_by("id").values_list("external_id", flat=True)[:limit])


def get_person_by_id_or_404(*, workspace, pk) -> Person:
    try:
        return Person.objects.for_workspace(workspace).select_related("company").get(pk=pk)
    except (Person.DoesNotExist, ValueError, TypeError):
        raise Http404("No such person in this workspace.") from None


def tag_names_by_person(*, people: list[Person]) -> dict[int, list[str]]:
    """Tag names of many people in one query."""
    names: dict[int, list[str]] = {p.pk: [] for p in people}
    rows = (
        PersonTag.objects.filter(person_id__in=list(names))
        .order_by(Lower("tag__name"))
        .values_list("person_id", "tag__name")
    )
    for person_id, name in rows:
        names[person_id].append(name)
    return names


def attribute_catalogue(*, workspace) -> dict[str, AttributeDefinition]:
    return {d.key: d for d in AttributeDefinition.objects.for_workspace(workspace)}


def event_list(*, workspace, person, name: str | None = None) -> QuerySet[Event]:
    events = Event.objects.for_workspace(workspace).filter(person=person)
    if name:
        events = events.filter(name=name)
    return events.order_by("-occurred_at", "-id")


def event_type_list(*, workspace) -> QuerySet[EventType]:
    return EventType.objects.for_workspace(workspace).order_by("name")


def event_total(*, workspace) -> int:
    """Events ever ingested, from the catalogue (counting the events table would scan it)."""
    return EventType.objects.for_workspace(workspace).aggregate(n=Sum("count"))["n"] or 0


def tag_list(*, workspace, q: str | None = None) -> QuerySet[Tag]:
    tags = Tag.objects.for_workspace(workspace).annotate(people_count=Count("person_tags"))
    if q and q.strip():
        tags = tags.filter(name__icontains=q.strip())
    return tags.order_by(Lower("name"))


def tag_count(*, workspace) -> int:
    return Tag.objects.for_workspace(workspace).count()


def tag_choices(*, workspace, limit: int = 500) -> QuerySet[Tag]:
    """Tags by name for pickers, without tag_list's counts: counting every tag's people
    reads all the workspace's tag assignments, too slow for every page view."""
    return Tag.objects.for_workspace(workspace).order_by(Lower("name"))[:limit]


def get_tag_or_404(*, workspace, name: str) -> Tag:
    tag = Tag.objects.for_workspace(workspace).filter(name__iexact=name).first()
    if tag is None:
        raise Http404(f"No tag named {name!r}.")
    return tag


def get_tag_by_id_or_404(*, workspace, pk) -> Tag:
    try:
        return Tag.objects.for_workspace(workspace).get(pk=pk)
    except (Tag.DoesNotExist, ValueError, TypeError):
        raise Http404("No such tag in this workspace.") from None


def company_names(*, workspace) -> list[str]:
    return list(Company.objects.for_workspace(workspace).values_list("name", flat=True))


def dnc_list(*, workspace, channel: str | None = None, q: str | None = None):
    entries = DoNotContact.objects.for_workspace(workspace)
    if channel:
        entries = entries.filter(channel=channel)
    if q and q.strip():
        entries = entries.filter(address__icontains=q.strip().lower())
    return entries.order_by("-created_at", "-id")


def get_dnc_or_404(*, workspace, pk) -> DoNotContact:
    try:
        return DoNotContact.objects.for_workspace(workspace).get(pk=pk)
    except (DoNotContact.DoesNotExist, ValueError, TypeError):
        raise Http404("No such Do Not Contact entry in this workspace.") from None


def dnc_is_blocked(*, workspace, channel: str, address: str) -> bool:
    """Whether `address` (normalized first) is on the channel's Do Not Contact list."""
    try:
        normalized = normalize_address(channel, address)
    except InvalidAddress:
        return False
    return (
        DoNotContact.objects.for_workspace(workspace)
        .filter(channel=channel, address=normalized)
        .exists()
    )


def blocked_condition(*, workspace, channel: str) -> Exists:
    """A condition over people: true when the person is blocked on `channel`.

    Set-based: `people.filter(blocked_condition(...))` answers "which of these people are
    blocked on channel C" in one query. Emails are stored lower-cased and phones in E.164,
    the same forms as Do Not Contact addresses, so the match is a plain equality.
    """
    dnc = DoNotContact.objects.filter(workspace=workspace, channel=channel)
    if channel == ContactChannel.EMAIL:
        return Exists(dnc.filter(address=OuterRef("email")))
    if channel == ContactChannel.SMS:
        return Exists(dnc.filter(address=OuterRef("phone")))
    if channel == ContactChannel.PUSH:
        return Exists(
            PushToken.objects.filter(
                workspace=workspace,
                person=OuterRef("pk"),
                token__in=dnc.values("address"),
            )
        )
    raise ValueError(f"unknown channel {channel!r}")


def blocked_people(*, workspace, channel: str, people: QuerySet[Person]) -> QuerySet[Person]:
    return people.filter(blocked_condition(workspace=workspace, channel=channel))


def dnc_status(*, workspace, person) -> dict[str, bool]:
    """For the profile: whether the person is blocked on each channel (one query)."""
    annotated = (
        Person.objects.for_workspace(workspace)
        .filter(pk=person.pk)
        .annotate(
            **{
                f"blocked_{c}": blocked_condition(workspace=workspace, channel=c)
                for c in ContactChannel.values
            }
        )
        .values(*(f"blocked_{c}" for c in ContactChannel.values))
        .get()
    )
    return {c: annotated[f"blocked_{c}"] for c in ContactChannel.values}


@dataclass
class QuickFilters:
    q: str = ""
    tags: list[str] = field(default_factory=list)
    gender: str = ""
    country: str = ""
    city: str = ""
    address: str = ""
    company: str = ""

    @property
    def active(self) -> bool:
        return any(
            [self.q, self.tags, self.gender, self.country, self.city, self.address, self.company]
        )


def person_filter(*, workspace, filters: QuickFilters) -> QuerySet[Person]:
    """People matching the People page's quick filters (every filter must hold)."""
    people = person_list(
        workspace=workspace, q=filters.q, tags=filters.tags, company=filters.company or None
    )
    for name in ("gender", "country", "city"):
        value = getattr(filters, name).strip()
        if value:
            people = people.filter(**{f"{name}__iexact": value})
    if filters.address.strip():
        people = people.filter(address__icontains=filters.address.strip())
    return people


@dataclass
class Counted:
    value: int
    exact: bool


def count_people(people: QuerySet[Person], *, exact_up_to: int = 200_000) -> Counted:
    """An exact count when it is cheap (up to `exact_up_to` rows), otherwise the planner's
    estimate, labelled as one. Counting a million rows exactly on every page view is
    what makes people pages slow.

    One query whatever the number of people, so that a page's query count does not grow
    with the rows: on PostgreSQL, EXPLAIN ANALYZE of the capped query reports both how
    many rows it read (the exact count, up to the cap) and the planner's estimate for the
    uncapped query (the row estimate of the plan under the LIMIT)."""
    import json

    from django.db import connection

    capped = people.order_by().values("id")[: exact_up_to + 1]
    try:
        sql, params = capped.query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nobody (people.none(), an empty list)
        return Counted(0, True)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, SUMMARY OFF, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    limit = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    n = int(limit["Actual Rows"])
    if n <= exact_up_to:
        return Counted(n, True)
    under = [p for p in limit.get("Plans", []) if p.get("Parent Relationship") == "Outer"]
    estimate = int((under[0] if under else limit)["Plan Rows"])
    return Counted(max(estimate, n), False)


def outbox_lag() -> dict:
    """The real-time outbox (PersonChange) across workspaces: changes waiting for
    evaluation and the age in seconds of the oldest (0 when none waits)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
            "FROM people_personchange WHERE processed_at IS NULL"
        )
        pending, oldest = cursor.fetchone()
    return {"pending": pending, "oldest_seconds": round(float(oldest), 1)}
