import factory
from factory.django import DjangoModelFactory

from accounts.models import Membership, Role, User, Workspace
from people.models import Person
from segments.services import ensure_predefined

PASSWORD = "correct-horse-battery-staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class WorkspaceFactory(DjangoModelFactory):
    class Meta:
        model = Workspace
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"workspace-{n}")
    time_zone = "UTC"

    @factory.post_generation
    def predefined(obj, create, extracted, **kwargs):
        """The built-in segments, as workspace_setup gives every real workspace
        (`WorkspaceFactory(predefined=False)` for one without them)."""
        if create and extracted is not False:
            ensure_predefined(workspace=obj)


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.VIEWER


class PersonFactory(DjangoModelFactory):
    class Meta:
        model = Person

    workspace = factory.SubFactory(WorkspaceFactory)
    external_id = factory.Sequence(lambda n: f"ext-{n}")
    email = factory.Sequence(lambda n: f"person{n}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    city = "London"


# --- People catalogue, events and tags (segments tests) ---------------------------------
# Imported here so that this section only appends to the module.
from django.utils import timezone  # noqa: E402

from people.models import (  # noqa: E402
    AttributeDefinition,
    AttributeType,
    Company,
    Event,
    EventType,
    PersonTag,
    Tag,
)


class CompanyFactory(DjangoModelFactory):
    class Meta:
        model = Company

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Company {n}")


class AttributeDefinitionFactory(DjangoModelFactory):
    class Meta:
        model = AttributeDefinition

    workspace = factory.SubFactory(WorkspaceFactory)
    key = factory.Sequence(lambda n: f"attribute_{n}")
    type = AttributeType.STRING


class EventTypeFactory(DjangoModelFactory):
    class Meta:
        model = EventType

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Event {n}")
    first_seen = factory.LazyFunction(timezone.now)
    last_seen = factory.LazyFunction(timezone.now)


class EventFactory(DjangoModelFactory):
    class Meta:
        model = Event

    person = factory.SubFactory(PersonFactory)
    workspace = factory.LazyAttribute(lambda event: event.person.workspace)
    name = "App Launch"
    occurred_at = factory.LazyFunction(timezone.now)
    properties = factory.Dict({})


class TagFactory(DjangoModelFactory):
    class Meta:
        model = Tag

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Tag {n}")


class PersonTagFactory(DjangoModelFactory):
    class Meta:
        model = PersonTag

    person = factory.SubFactory(PersonFactory)
    workspace = factory.LazyAttribute(lambda person_tag: person_tag.person.workspace)
    tag = factory.SubFactory(TagFactory, workspace=factory.SelfAttribute("..workspace"))
