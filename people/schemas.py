"""Person schemas of the HTTP API that several routers answer with (people, segments,
target audiences), and the prefetch that PersonOut needs."""

from datetime import datetime
from typing import Any, Literal

from django.db.models import Prefetch
from ninja import Field, Schema

from audiences.models import AudienceMember
from config.api import InputSchema
from people.models import PersonTag


class PushTokenSchema(Schema):
    platform: Literal["ios", "android", "web"]
    token: str


class PersonOut(Schema):
    id: int
    external_id: str
    email: str
    phone: str
    first_name: str
    last_name: str
    gender: str
    country: str
    city: str
    address: str
    company: str
    time_zone: str = Field(description="IANA name; empty: the workspace's time zone.")
    attributes: dict[str, Any]
    push_tokens: list[PushTokenSchema]
    tags: list[str]
    audiences: list[str]
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_company(obj):
        return obj.company.name if obj.company_id else ""

    @staticmethod
    def resolve_tags(obj):
        return sorted((pt.tag.name for pt in obj.person_tags.all()), key=str.lower)

    @staticmethod
    def resolve_push_tokens(obj):
        return [{"platform": t.platform, "token": t.token} for t in obj.push_tokens.all()]

    @staticmethod
    def resolve_audiences(obj):
        return sorted((m.audience.name for m in obj.audience_memberships.all()), key=str.lower)


class PeopleRef(InputSchema):
    people: list[str] = Field(..., max_length=10000, description="External ids.")


def with_person_related(people):
    """Prefetch what PersonOut shows (tags, tokens, audiences): a constant number of queries
    per page."""
    return people.prefetch_related(
        Prefetch("person_tags", queryset=PersonTag.objects.select_related("tag")),
        "push_tokens",
        Prefetch(
            "audience_memberships", queryset=AudienceMember.objects.select_related("audience")
        ),
    )
