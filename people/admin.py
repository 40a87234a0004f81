from django.contrib import admin

from accounts.admin_scoping import (
    ReadOnlyScopedAdmin,
    WorkspaceScopedAdmin,
    WorkspaceScopedResource,
)
from people.models import (
    BUILTIN_FIELDS,
    AttributeDefinition,
    Company,
    ContactImport,
    DoNotContact,
    Event,
    EventType,
    Person,
    PersonChange,
    PersonTag,
    PushToken,
    Tag,
    TrackedMessage,
)


class PersonResource(WorkspaceScopedResource):
    class Meta:
        model = Person
        import_id_fields = ("workspace", "external_id")
        fields = ("workspace", *BUILTIN_FIELDS[:-1], "attributes")  # company (a row) stays out
        use_bulk = True
        batch_size = 1000


@admin.register(Person)
class PersonAdmin(WorkspaceScopedAdmin):
    resource_classes = [PersonResource]
    list_display = ("external_id", "email", "first_name", "last_name", "city", "workspace")
    search_fields = ("external_id", "email", "last_name")
    list_select_related = ("workspace",)
    raw_id_fields = ("company",)
    show_full_result_count = False


class AttributeDefinitionResource(WorkspaceScopedResource):
    class Meta:
        model = AttributeDefinition
        import_id_fields = ("workspace", "key")
        fields = ("workspace", "key", "label", "type", "inferred")


@admin.register(AttributeDefinition)
class AttributeDefinitionAdmin(WorkspaceScopedAdmin):
    resource_classes = [AttributeDefinitionResource]
    list_display = ("key", "label", "type", "inferred", "workspace")
    list_filter = ("type",)


class CompanyResource(WorkspaceScopedResource):
    class Meta:
        model = Company
        import_id_fields = ("workspace", "name")
        fields = ("workspace", "name")


@admin.register(Company)
class CompanyAdmin(WorkspaceScopedAdmin):
    resource_classes = [CompanyResource]
    list_display = ("name", "workspace", "created_at")
    search_fields = ("name",)


class TagResource(WorkspaceScopedResource):
    class Meta:
        model = Tag
        import_id_fields = ("workspace", "name")
        fields = ("workspace", "name")


@admin.register(Tag)
class TagAdmin(WorkspaceScopedAdmin):
    resource_classes = [TagResource]
    list_display = ("name", "workspace", "created_at")
    search_fields = ("name",)


class DoNotContactResource(WorkspaceScopedResource):
    class Meta:
        model = DoNotContact
        import_id_fields = ("workspace", "channel", "address")
        fields = ("workspace", "channel", "address", "reason", "source", "created_at")


@admin.register(DoNotContact)
class DoNotContactAdmin(WorkspaceScopedAdmin):
    resource_classes = [DoNotContactResource]
    list_display = ("address", "channel", "source", "reason", "workspace", "created_at")
    list_filter = ("channel", "source")
    search_fields = ("address",)


@admin.register(Event)
class EventAdmin(ReadOnlyScopedAdmin):
    list_display = ("name", "person", "occurred_at", "workspace")
    raw_id_fields = ("person",)
    show_full_result_count = False


@admin.register(EventType)
class EventTypeAdmin(ReadOnlyScopedAdmin):
    list_display = ("name", "count", "first_seen", "last_seen", "workspace")


@admin.register(PersonTag)
class PersonTagAdmin(ReadOnlyScopedAdmin):
    list_display = ("person", "tag", "source", "created_at", "workspace")
    raw_id_fields = ("person", "tag")
    show_full_result_count = False


@admin.register(PushToken)
class PushTokenAdmin(ReadOnlyScopedAdmin):
    list_display = ("person", "platform", "token", "workspace")
    raw_id_fields = ("person",)


@admin.register(ContactImport)
class ContactImportAdmin(ReadOnlyScopedAdmin):
    list_display = ("original_name", "status", "stage", "total_rows", "created_count", "workspace")


@admin.register(PersonChange)
class PersonChangeAdmin(ReadOnlyScopedAdmin):
    """The real-time outbox: what is waiting for evaluation (processed_at empty)."""

    list_display = ("id", "keys", "everyone", "created_at", "processed_at", "workspace")
    show_full_result_count = False


@admin.register(TrackedMessage)
class TrackedMessageAdmin(ReadOnlyScopedAdmin):
    list_display = ("message_id", "received_at", "workspace")
    show_full_result_count = False
