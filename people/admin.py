from django.contrib import admin

from accounts.admin_scoping import WorkspaceScopedAdmin, WorkspaceScopedResource
from people.models import Person


class PersonResource(WorkspaceScopedResource):
    class Meta:
        model = Person
        import_id_fields = ("workspace", "external_id")
        fields = (
            "workspace",
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "gender",
            "country",
            "city",
            "address",
            "company",
            "attributes",
        )
        use_bulk = True
        batch_size = 1000


@admin.register(Person)
class PersonAdmin(WorkspaceScopedAdmin):
    resource_classes = [PersonResource]
    list_display = ("external_id", "email", "first_name", "last_name", "city", "workspace")
    search_fields = ("external_id", "email", "last_name")
    list_select_related = ("workspace",)
    show_full_result_count = False
