"""Writes about people: upserts with typed attributes, push tokens, erase.

Work over many people is set-based: one bulk statement per batch, never a query per person.
"""

import json
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.text import has_forbidden_character
from people.attributes import NOT_STORABLE, AttributeTypeError, check_value
from people.changes import ANY_RULE, attr_key, record_change
from people.models import AttributeDefinition, Company, Person, PushToken
from people.normalize import (
    InvalidAddress,
    InvalidTimeZone,
    normalize_address,
    normalize_email,
    normalize_phone,
    normalize_time_zone,
)
from people.services._common import MAX_BATCH, PersonInputError
from people.services.attributes import (
    _attribute_names_problem,
    _catalogue_add,
    _check_attributes,
    _inferred_types,
)
from people.sql import execute_arrays

PERSON_TEXT_FIELDS = [
    "email",
    "phone",
    "first_name",
    "last_name",
    "gender",
    "country",
    "city",
    "address",
    "time_zone",
]


@dataclass
class BatchResult:
    created: int = 0
    updated: int = 0
    errors: list[dict] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)


def _clean_person(data: dict, types: dict[str, str]) -> dict:
    """Normalized, validated fields of one person (only the fields that were sent)."""
    clean = {}
    for name in PERSON_TEXT_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise PersonInputError(name, f"{name} must be a string")
        if has_forbidden_character(value):
            raise PersonInputError(name, f"{name} {NOT_STORABLE}")
        value = value.strip()
        if value:
            try:
                if name == "email":
                    value = normalize_email(value)
                elif name == "phone":
                    value = normalize_phone(value)
                elif name == "time_zone":  # "" (null, or not sent) is the workspace's
                    value = normalize_time_zone(value)
            except (InvalidAddress, InvalidTimeZone) as e:
                raise PersonInputError(name, str(e)) from None
        max_length = Person._meta.get_field(name).max_length
        if len(value) > max_length:
            raise PersonInputError(name, f"{name} is longer than {max_length} characters")
        clean[name] = value
    if "company" in data:
        company = data["company"] or ""
        if not isinstance(company, str):
            raise PersonInputError("company", "company must be a string")
        if has_forbidden_character(company):
            raise PersonInputError("company", f"company {NOT_STORABLE}")
        company = company.strip()
        if len(company) > 200:
            raise PersonInputError("company", "company is longer than 200 characters")
        clean["company"] = company
    if "attributes" in data and data["attributes"] is not None:
        if not isinstance(data["attributes"], dict):
            raise PersonInputError("attributes", "attributes must be an object")
        clean["attributes"] = _check_attributes(data["attributes"], types)
    if "push_tokens" in data and data["push_tokens"] is not None:
        if not isinstance(data["push_tokens"], list):
            raise PersonInputError("push_tokens", "push_tokens must be a list")
        tokens = []
        for i, token in enumerate(data["push_tokens"]):
            if not isinstance(token, dict):
                raise PersonInputError(f"push_tokens.{i}", "a push token is an object")
            platform = token.get("platform")
            if platform not in {"ios", "android", "web"}:
                raise PersonInputError(
                    f"push_tokens.{i}.platform", "platform must be ios, android or web"
                )
            try:
                value = normalize_address("push", token.get("token") or "")
            except InvalidAddress as e:
                raise PersonInputError(f"push_tokens.{i}.token", str(e)) from None
            tokens.append((platform, value))
        clean["push_tokens"] = tokens
    return clean


def person_upsert_batch(*, workspace, items: list[dict], actor: Actor) -> BatchResult:
    """Create or update people by external_id; fields not sent are kept.

    Valid items are applied even when others fail; each failure is reported by index.
    One transaction, a constant number of statements per batch (no query per person).
    audit: one "person.upsert_batch" entry with the counts and the field names sent.
    """
    return _upsert_batch(
        workspace=workspace, items=items, actor=actor, action="person.upsert_batch"
    )


def _upsert_batch(*, workspace, items: list[dict], actor: Actor, action: str) -> BatchResult:
    if len(items) > MAX_BATCH:
        raise ValueError(f"a batch holds at most {MAX_BATCH} people")
    result = BatchResult()
    catalogue = dict(
        AttributeDefinition.objects.for_workspace(workspace).values_list("key", "type")
    )
    # First what needs no type (ids, attribute names), then the types, then the values;
    # the catalogue is written last, with only the keys of people who passed every check.
    candidates: list[tuple[int, str, dict]] = []
    for index, item in enumerate(items):
        external_id = item.get("external_id") if isinstance(item, dict) else None
        external_id = external_id.strip() if isinstance(external_id, str) else ""
        if not external_id or len(external_id) > 255:
            result.errors.append(
                {"index": index, "msg": "external_id is required (1-255 characters)"}
            )
            continue
        if has_forbidden_character(external_id):
            result.errors.append(
                {"index": index, "field": "external_id", "msg": f"external_id {NOT_STORABLE}"}
            )
            continue
        attributes = item.get("attributes")
        problem = (
            _attribute_names_problem(attributes, catalogue)
            if isinstance(attributes, dict)
            else None
        )
        if problem:
            result.errors.append({"index": index, "field": problem.field, "msg": problem.message})
            continue
        candidates.append((index, external_id, item))
    types = _inferred_types(
        [i["attributes"] for _, _, i in candidates if isinstance(i.get("attributes"), dict)],
        catalogue,
    )
    valid: dict[str, tuple[int, dict]] = {}
    for index, external_id, item in candidates:
        try:
            clean = _clean_person(item, types)
        except PersonInputError as e:
            result.errors.append({"index": index, "field": e.field, "msg": e.message})
            continue
        if external_id in valid:  # the same person twice in a batch: the later item wins
            previous = valid[external_id][1]
            attributes = {**previous.get("attributes", {}), **clean.get("attributes", {})}
            clean = {**previous, **clean}
            if attributes:
                clean["attributes"] = attributes
        valid[external_id] = (index, clean)
    new = {
        key: types[key]
        for _, clean in valid.values()
        for key, value in clean.get("attributes", {}).items()
        if value is not None and key not in catalogue
    }
    if new:
        stored = _catalogue_add(workspace=workspace, new=new)
        _recheck_retyped(valid, {k: t for k, t in stored.items() if new.get(k) != t}, result)
    result.errors.sort(key=lambda e: e["index"])
    if not valid:
        return result
    for attempt in range(2):
        try:
            with transaction.atomic():
                _apply_people(workspace=workspace, valid=valid, result=result)
                _audit_upsert(workspace=workspace, actor=actor, action=action, valid=valid,
                              result=result)  # fmt: skip
            break
        except IntegrityError:
            # A concurrent batch created one of these people between our read and insert:
            # the second pass sees it and updates instead.
            if attempt:
                raise
            result.created = result.updated = 0
            result.people = []
    return result


def _audit_upsert(*, workspace, actor, action, valid, result: BatchResult) -> None:
    fields = sorted({k for _, clean in valid.values() for k in clean if k != "attributes"})
    attributes = sorted({k for _, clean in valid.values() for k in clean.get("attributes", {})})
    single = action == "person.upsert" and len(result.people) == 1
    audit_record(
        workspace=workspace,
        actor=actor,
        action=action,
        obj=result.people[0] if single else None,
        object_type="" if single else "person",
        summary={
            "created": result.created,
            "updated": result.updated,
            "refused": len(result.errors),
            "fields": fields,
            "attributes": attributes,
        },
    )


def _recheck_retyped(valid: dict[str, tuple[int, dict]], retyped: dict[str, str], result):
    """A concurrent writer typed some new keys otherwise: the people whose values do not
    fit the type that won are refused, the others go on."""
    if not retyped:
        return
    for external_id, (index, clean) in list(valid.items()):
        for key, value in clean.get("attributes", {}).items():
            if key in retyped and value is not None:
                try:
                    check_value(key, value, retyped[key])
                except AttributeTypeError as e:
                    field_name = f"attributes.{key}"
                    result.errors.append({"index": index, "field": field_name, "msg": str(e)})
                    del valid[external_id]
                    break


def _apply_people(*, workspace, valid: dict[str, tuple[int, dict]], result: BatchResult):
    company_names = {c["company"] for _, c in valid.values() if c.get("company")}
    companies = {}
    if company_names:
        Company.objects.bulk_create(
            [Company(workspace=workspace, name=n) for n in company_names], ignore_conflicts=True
        )
        companies = dict(
            Company.objects.for_workspace(workspace)
            .filter(name__in=company_names)
            .values_list("name", "id")
        )
    existing = {
        p.external_id: p
        for p in Person.objects.for_workspace(workspace)
        # one array parameter, not 1,000: psycopg's client-side binding parsed the
        # 1,000 placeholders for 40 ms of a 130 ms query (benchmarks/people_upsert.py)
        .filter(external_id__in=RawSQL("SELECT unnest(%s::text[])", [list(valid)]))
        .select_for_update()
    }
    now = timezone.now()
    to_create, to_update, changed_fields = [], [], set()
    for external_id, (_, clean) in valid.items():
        person = existing.get(external_id) or Person(
            workspace=workspace, external_id=external_id, created_at=now, attributes={}
        )
        for name in PERSON_TEXT_FIELDS:
            if name in clean:
                setattr(person, name, clean[name])
                changed_fields.add(name)
        if "company" in clean:
            person.company_id = companies.get(clean["company"]) if clean["company"] else None
            changed_fields.add("company")
        if "attributes" in clean:
            merged = dict(person.attributes or {})
            for key, value in clean["attributes"].items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            person.attributes = merged
            changed_fields.add("attributes")
        person.updated_at = now
        (to_update if person.pk else to_create).append(person)
    _insert_people(to_create)
    if to_update and changed_fields:
        _update_people(to_update, sorted(changed_fields))
    result.created, result.updated = len(to_create), len(to_update)
    result.people = to_create + to_update
    tokens = {
        p.pk: valid[p.external_id][1]["push_tokens"]
        for p in result.people
        if "push_tokens" in valid[p.external_id][1]
    }
    if tokens:
        _replace_push_tokens(workspace=workspace, tokens=tokens)
    keys = {attr_key(name) for name in changed_fields if name != "attributes"}
    keys |= {attr_key(k) for _, clean in valid.values() for k in clean.get("attributes", {})}
    record_change(workspace=workspace, keys=keys, person_ids=[p.pk for p in to_update])
    record_change(workspace=workspace, keys=[ANY_RULE], person_ids=[p.pk for p in to_create])


_COLUMN_TYPES = {"company_id": "bigint", "attributes": "text"}  # the rest: text fields


def _insert_people(people: list[Person]) -> None:
    """INSERT the new `people` in one statement from unnest(arrays) and give each its id.
    Hand-written on the hot path like _update_people: bulk_create binds every field of
    every row as its own parameter (13,000 for 1000 people)."""
    if not people:
        return
    text = ["external_id", *PERSON_TEXT_FIELDS]
    values = [[getattr(p, f) for p in people] for f in text]
    values += [
        [p.company_id for p in people],
        [json.dumps(p.attributes or {}, separators=(",", ":")) for p in people],
        [p.created_at for p in people],
        [p.updated_at for p in people],
    ]
    arrays = ", ".join(
        [
            *["%s::text[]"] * len(text),
            "%s::bigint[]",
            "%s::text[]",
            "%s::timestamptz[]",
            "%s::timestamptz[]",
        ]
    )
    names = [*text, "company_id", "attributes", "created_at", "updated_at"]
    selected = ", ".join(f"u.{n}::jsonb" if n == "attributes" else f"u.{n}" for n in names)
    rows = execute_arrays(
        f"INSERT INTO people_person (workspace_id, {', '.join(names)}) "  # noqa: S608
        f"SELECT %s::bigint, {selected} "
        f"FROM unnest({arrays}) AS u({', '.join(names)}) RETURNING id, external_id",
        [people[0].workspace_id, *values],
    )
    ids = {external_id: pk for pk, external_id in rows}
    for p in people:
        p.pk = ids[p.external_id]
        p._state.adding = False


def _update_people(people: list[Person], fields: list[str]) -> None:
    """Write `fields` (and updated_at) of `people` in one UPDATE ... FROM unnest(arrays).

    Hand-written on the hot path: Django's bulk_update writes a CASE of every row for
    every field, and for 1000 people of 8 fields spent 2.8 s building and running it
    (benchmarks/people_upsert.py), against tens of milliseconds here."""
    columns = ["company_id" if f == "company" else f for f in fields]
    values = [[p.pk for p in people]]
    for column in columns:
        if column == "attributes":
            values.append([json.dumps(p.attributes, separators=(",", ":")) for p in people])
        else:
            values.append([getattr(p, column) for p in people])
    values.append([p.updated_at for p in people])
    names = ["id", *columns, "updated_at"]
    types = ["bigint", *[_COLUMN_TYPES.get(c, "text") for c in columns], "timestamptz"]
    sets = ", ".join(
        f"{c} = u.{c}::jsonb" if c == "attributes" else f"{c} = u.{c}"
        for c in [*columns, "updated_at"]
    )
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    execute_arrays(
        f"UPDATE people_person p SET {sets} "  # noqa: S608 - column names of the model
        f"FROM unnest({arrays}) AS u({', '.join(names)}) WHERE p.id = u.id",
        values,
    )


def _replace_push_tokens(*, workspace, tokens: dict[int, list[tuple[str, str]]]):
    """The sent list replaces a person's tokens; a token moves to the person who sent it last."""
    pairs = {(platform, token) for items in tokens.values() for platform, token in items}
    PushToken.objects.for_workspace(workspace).filter(person_id__in=list(tokens)).delete()
    for platform in {p for p, _ in pairs}:
        PushToken.objects.for_workspace(workspace).filter(
            platform=platform, token__in=[t for p, t in pairs if p == platform]
        ).delete()
    seen = set()
    rows = []
    for person_id, items in tokens.items():
        for platform, token in items:
            if (platform, token) not in seen:
                seen.add((platform, token))
                rows.append(
                    PushToken(
                        workspace=workspace, person_id=person_id, platform=platform, token=token
                    )
                )
    PushToken.objects.bulk_create(rows)


def person_upsert(*, workspace, external_id: str, data: dict, actor: Actor) -> tuple[Person, bool]:
    """One person (PUT): (person, created). Raises PersonInputError with the field.
    audit: "person.upsert" """
    result = _upsert_batch(
        workspace=workspace,
        items=[{**data, "external_id": external_id}],
        actor=actor,
        action="person.upsert",
    )
    if result.errors:
        error = result.errors[0]
        raise PersonInputError(error.get("field", "external_id"), error["msg"])
    return result.people[0], bool(result.created)


@transaction.atomic
def person_erase(*, person: Person, actor: Actor) -> None:
    """Erase the person, their events, tags, tokens and memberships (cascade). Their
    addresses stay on Do Not Contact as the list already holds them. audit:
    "person.erase" with the Herald id only, so the log never needs editing for it."""
    audit_record(workspace=person.workspace_id, actor=actor, action="person.erase", obj=person)
    person.delete()
