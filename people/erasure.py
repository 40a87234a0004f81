"""Erasing a person from every app that holds them, as one explicit call above the app
chain (like people.selection, it may call any app's services): their target audiences
and stored segments lose a member from their counts, then the person goes with their
events, tags, tokens and memberships (people.services.person_erase)."""

from django.db import transaction

from accounts.audit import Actor
from audiences.services import audiences_forget_person
from people.models import Person
from people.services.people import person_erase
from segments.services import segments_forget_person


@transaction.atomic
def erase_person(*, person: Person, actor: Actor) -> None:
    """audit: "person.erase" (one entry: the counts are part of it)."""
    Person.objects.filter(pk=person.pk).select_for_update().first()
    audiences_forget_person(person=person)
    segments_forget_person(person=person)
    person_erase(person=person, actor=actor)
