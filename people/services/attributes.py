"""Writes about custom attributes: the catalogue and the checks of attribute values."""

from django.db import transaction

from accounts.audit import Actor, audit_record
from accounts.text import has_forbidden_character
from people.attributes import (
    BUILTIN_ATTRIBUTES,
    AttributeTypeError,
    check_value,
    infer_type,
    key_problem,
    unstorable,
)
from people.models import AttributeDefinition
from people.services._common import PersonInputError

RESERVED_KEYS = {"tags", "audiences", "push_tokens", "id"}


def _attribute_names_problem(attributes: dict, catalogue: dict) -> PersonInputError | None:
    """The first attribute name that cannot be used, as the error to report; checked before
    anything is written, so a refused person adds nothing to the catalogue."""
    for key in attributes:
        problem = key_problem(key, known=catalogue)
        if problem is None and (key in BUILTIN_ATTRIBUTES or key in RESERVED_KEYS):
            problem = f"“{key}” is a built-in field, not a custom one"
        if problem:
            shown = f"attributes.{key}" if isinstance(key, str) and key.strip() else "attributes"
            field_name = "attributes" if has_forbidden_character(shown) else shown
            return PersonInputError(field_name, problem)
    return None


def _inferred_types(items: list[dict], catalogue: dict[str, str]) -> dict[str, str]:
    """Types for every attribute key of `items`: declared ones, then the type the first
    value seen implies for a new key. Writes nothing (see _catalogue_add)."""
    types = dict(catalogue)
    for attributes in items:
        for key, value in attributes.items():
            if key in types:
                continue
            try:
                kind = infer_type(value)
            except AttributeTypeError:
                continue  # reported when the value is checked
            if kind is not None:
                types[key] = kind
    return types


def _catalogue_add(*, workspace, new: dict[str, str]) -> dict[str, str]:
    """Add inferred keys to the catalogue (set-based, concurrent-safe); returns the types
    as stored: a concurrent writer may have typed a key first, and its type wins."""
    AttributeDefinition.objects.bulk_create(
        [
            AttributeDefinition(workspace=workspace, key=k, label=k, type=t, inferred=True)
            for k, t in new.items()
        ],
        ignore_conflicts=True,
    )
    return dict(
        AttributeDefinition.objects.for_workspace(workspace)
        .filter(key__in=list(new))
        .values_list("key", "type")
    )


def _check_attributes(attributes: dict, types: dict[str, str]) -> dict:
    checked = {}
    for key, value in attributes.items():
        if value is None:
            checked[key] = None
            continue
        bad = unstorable(value, f"attributes.{key}")
        if bad:
            raise PersonInputError(bad[0], f"attribute “{key}” {bad[1]}")
        if key not in types:
            raise PersonInputError(
                f"attributes.{key}", f"attribute “{key}” has an unsupported value {value!r}"
            )
        try:
            checked[key] = check_value(key, value, types[key])
        except AttributeTypeError as e:
            raise PersonInputError(f"attributes.{key}", str(e)) from None
    return checked


@transaction.atomic
def attribute_declare(
    *, workspace, key: str, type: str, actor: Actor, label: str = ""
) -> AttributeDefinition:
    """Declare or change an attribute's type (a marketer decides; later writes obey it).
    audit: "attribute.declare" (the key is a field name, not a value)."""
    definition, created = AttributeDefinition.objects.update_or_create(
        workspace=workspace,
        key=key,
        defaults={"type": type, "label": label or key, "inferred": False},
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="attribute.declare",
        obj=definition,
        summary={"key": key, "type": type, "created": created},
    )
    return definition
