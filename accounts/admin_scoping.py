"""Admin and django-import-export pieces that keep an admin user inside their workspaces.

Every tenant-owned model's admin lists, edits, exports and imports only rows of the
workspaces the signed-in user belongs to; an imported row naming another workspace is
refused with the row's number. Foreign keys, in forms and in imports, may only point at
rows of the row's own workspace (and at users of the admin user's workspaces). Imports
and exports need the model's permissions, an admin without a scoped resource cannot
import at all (fail closed), and every export is a CSV whose formula cells are defused.
"""

import io

from django import forms
from django.contrib.auth import get_permission_codename, get_user_model
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from import_export import resources, widgets
from import_export.admin import ImportExportModelAdmin
from import_export.formats import base_formats

from accounts import csv_safe
from accounts.models import Membership, Workspace


def admin_workspace_ids(user) -> list[int]:
    return list(Workspace.objects.filter(memberships__user=user).values_list("id", flat=True))


def admin_users(user):
    """The users `user` may see and pick in the admin: everyone for a superuser, otherwise
    the members of `user`'s workspaces (and `user`)."""
    User = get_user_model()
    if user.is_superuser:
        return User.objects.all()
    members = Membership.objects.filter(workspace_id__in=admin_workspace_ids(user))
    return User.objects.filter(Q(id__in=members.values("user_id")) | Q(pk=user.pk))


def admin_choices(user, model):
    """The rows of `model` that `user` may link to from an admin form; none for a model
    this module does not know how to scope (fail closed)."""
    if model is Workspace:
        return Workspace.objects.filter(id__in=admin_workspace_ids(user))
    if model is get_user_model():
        return admin_users(user)
    if _is_tenant_owned(model):
        manager = model.objects.unscoped() if hasattr(model.objects, "unscoped") else model.objects
        return manager.filter(workspace_id__in=admin_workspace_ids(user))
    return model._default_manager.none()


def link_refusal(user, related, *, workspace_id) -> str | None:
    """Why a row of `workspace_id` may not point at `related`, or None when it may."""
    name = f"{related._meta.verbose_name} {related.pk}"
    if isinstance(related, Workspace):
        if related.pk not in admin_workspace_ids(user):
            return f"{name} is not one of your workspaces."
    elif _is_tenant_owned(type(related)):
        if related.workspace_id != workspace_id:
            return f"{name} belongs to another workspace than this row."
    elif isinstance(related, get_user_model()):
        if not admin_users(user).filter(pk=related.pk).exists():
            return f"{name} is not a member of your workspaces."
    else:
        return f"{name} cannot be linked from the admin."
    return None


def _is_tenant_owned(model) -> bool:
    try:
        field = model._meta.get_field("workspace")
    except FieldDoesNotExist:
        return False
    return field.is_relation and field.related_model is Workspace


class SafeCSV(base_formats.CSV):
    """CSV whose export defuses cells a spreadsheet would run as a formula.

    The admin's only format: django-import-export's own IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT
    only strips a leading "=". Cells are written by accounts.csv_safe, the one CSV-safe
    writer (= + - @ | %, a leading tab or carriage return), numbers kept as they are so an
    export imports back.
    """

    def export_data(self, dataset, **kwargs):
        stream = io.StringIO()
        writer = csv_safe.writer(stream, keep_numbers=True)
        if dataset.headers:
            writer.writerow(dataset.headers)
        writer.writerows(dataset)
        return stream.getvalue()


class SafeImportExportAdmin(ImportExportModelAdmin):
    """Import and export as CSV only; exports are defused (SafeCSV). The permissions needed
    are set in settings (IMPORT_EXPORT_IMPORT_PERMISSION_CODE / _EXPORT_)."""

    import_formats = [base_formats.CSV]
    export_formats = [SafeCSV]


class WorkspaceScopedResource(resources.ModelResource):
    """Export and import only rows of the admin user's workspaces.

    An imported row must name one of the user's workspaces, may not carry the id of a row
    it did not find in them, may not change a found row's id, and its foreign keys must
    point at rows of its own workspace (or users of the user's workspaces).
    """

    def __init__(self, *, user=None, **kwargs):
        super().__init__(**kwargs)
        self.user = user
        self._allowed_ids = None
        self._link_refusals = {}  # (model, pk, workspace id) -> reason or None

    def import_data(self, *args, rollback_on_validation_errors=True, **kwargs):
        # All or nothing: one refused row rolls back the whole file.
        return super().import_data(
            *args, rollback_on_validation_errors=rollback_on_validation_errors, **kwargs
        )

    def allowed_ids(self) -> list[int]:
        if self._allowed_ids is None:
            self._allowed_ids = admin_workspace_ids(self.user) if self.user is not None else []
        return self._allowed_ids

    def get_queryset(self):
        return self._meta.model.objects.unscoped().filter(workspace_id__in=self.allowed_ids())

    def before_import_row(self, row, **kwargs):
        ws = row.get("workspace")
        try:
            allowed = ws is not None and str(ws).strip() != "" and int(ws) in self.allowed_ids()
        except (TypeError, ValueError):
            allowed = False
        if not allowed:
            raise ValidationError(
                f"workspace {ws!r} is not one of your workspaces; rows may only be written "
                "to workspaces you belong to."
            )

    def after_init_instance(self, instance, new, row, **kwargs):
        super().after_init_instance(instance, new, row, **kwargs)
        instance._admin_found_pk = None if new else instance.pk

    def save_instance(self, instance, is_create, row, **kwargs):
        self.check_instance(instance, is_create=is_create, row=row)
        super().save_instance(instance, is_create, row, **kwargs)

    def check_instance(self, instance, *, is_create, row):
        """Raise ValidationError when the row would leave the user's workspaces."""
        if instance.workspace_id not in self.allowed_ids():
            raise ValidationError("Rows may only be written to workspaces you belong to.")
        if is_create and instance.pk is not None:
            raise ValidationError(
                f"id {instance.pk} is not a row of your workspaces; leave id empty to add a row."
            )
        if not is_create and instance.pk != getattr(instance, "_admin_found_pk", instance.pk):
            raise ValidationError("An import cannot change a row's id.")
        errors = {}
        for field in self.get_import_fields():
            linked = isinstance(field.widget, widgets.ForeignKeyWidget)
            own_workspace = field.attribute in ("workspace", "workspace_id")  # checked above
            if not linked or own_workspace or field.column_name not in row:
                continue
            value = getattr(instance, field.attribute, None)
            if value is None:
                continue
            model = field.widget.model
            pk = value.pk if isinstance(value, model) else value  # key_is_id: the id alone
            key = (model, pk, instance.workspace_id)
            if key not in self._link_refusals:
                related = value if isinstance(value, model) else model._base_manager.get(pk=pk)
                self._link_refusals[key] = link_refusal(
                    self.user, related, workspace_id=instance.workspace_id
                )
            if self._link_refusals[key]:
                errors[field.attribute] = self._link_refusals[key]
        if errors:
            raise ValidationError(errors)


class WorkspaceScopedForm(forms.ModelForm):
    """Refuses links (foreign keys, many-to-many) to rows of another workspace than the
    row's own; the admin sets `admin_user` on the form class it builds."""

    admin_user = None

    def clean(self):
        cleaned = super().clean()
        chosen = cleaned.get("workspace")
        workspace_id = chosen.pk if isinstance(chosen, Workspace) else self.instance.workspace_id
        for name, value in list(cleaned.items()):
            try:
                model_field = self._meta.model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if not model_field.is_relation or name == "workspace" or value is None:
                continue
            related_rows = value.all() if model_field.many_to_many else [value]
            for related in related_rows:
                reason = link_refusal(self.admin_user, related, workspace_id=workspace_id)
                if reason:
                    self.add_error(name, reason)
                    break
        return cleaned


class WorkspaceScopedAdmin(SafeImportExportAdmin):
    """ModelAdmin for tenant-owned models, limited to the user's workspaces."""

    form = WorkspaceScopedForm

    def get_queryset(self, request):
        model = self.model
        manager = model.objects.unscoped() if hasattr(model.objects, "unscoped") else model.objects
        return manager.filter(workspace_id__in=admin_workspace_ids(request.user))

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.admin_user = request.user  # a class built for this request
        return form

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs["queryset"] = admin_choices(request.user, db_field.related_model)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs["queryset"] = admin_choices(request.user, db_field.related_model)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_import_permission(self, request):
        # Fail closed: without a declared scoped resource, import-export would fall back to
        # an unscoped ModelResource that reads and writes every workspace's rows.
        classes = self.get_import_resource_classes(request)
        if not classes or not all(issubclass(c, WorkspaceScopedResource) for c in classes):
            return False
        # An import adds rows as well as changing them.
        opts = self.opts
        can_add = request.user.has_perm(f"{opts.app_label}.{get_permission_codename('add', opts)}")
        return can_add and super().has_import_permission(request)

    def get_export_resource_classes(self, request):
        if not (self.resource_classes or self.resource_class):
            if getattr(self, "_scoped_export_resource", None) is None:
                self._scoped_export_resource = resources.modelresource_factory(
                    self.model, resource_class=WorkspaceScopedResource
                )
            return [self._scoped_export_resource]
        return super().get_export_resource_classes(request)

    def has_export_permission(self, request):
        classes = self.get_export_resource_classes(request)
        if not all(issubclass(c, WorkspaceScopedResource) for c in classes):
            return False
        return super().has_export_permission(request)

    def get_resource_kwargs(self, request, *args, **kwargs):
        return {**super().get_resource_kwargs(request, *args, **kwargs), "user": request.user}

    def get_export_resource_kwargs(self, request, **kwargs):
        return {**super().get_export_resource_kwargs(request, **kwargs), "user": request.user}

    def get_import_resource_kwargs(self, request, **kwargs):
        return {**super().get_import_resource_kwargs(request, **kwargs), "user": request.user}

    def get_export_queryset(self, request):
        return self.get_queryset(request)

    # --- the audit log: an admin edit is a write like any other (accounts.audit) ---------
    # One entry per action, inside the admin's own transaction: "admin.<model>.create" or
    # ".change" with the names of the fields changed, ".delete", and an import as one
    # entry per workspace with its counts. Ids and field names only, never values.

    def _audit(self, request, *, workspace_id, action: str, obj=None, summary=None):
        from accounts.audit import Actor, audit_record

        audit_record(
            workspace=workspace_id,
            actor=Actor.from_request(request),
            action=f"admin.{self.opts.model_name}.{action}",
            obj=obj,
            summary=summary,
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._audit(
            request,
            workspace_id=obj.workspace_id,
            action="change" if change else "create",
            obj=obj,
            summary={"fields": sorted(form.changed_data)} if change else None,
        )

    def delete_model(self, request, obj):
        self._audit(request, workspace_id=obj.workspace_id, action="delete", obj=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            counts = queryset.order_by().values("workspace_id").annotate(n=Count("pk"))
            for row in counts:
                self._audit(
                    request,
                    workspace_id=row["workspace_id"],
                    action="delete_many",
                    summary={"rows": row["n"]},
                )
            super().delete_queryset(request, queryset)

    def generate_log_entries(self, result, request):
        super().generate_log_entries(result, request)
        # the import committed already (import-export's own transaction): record it now
        per_workspace: dict[int, dict[str, int]] = {}
        for row in result.rows:
            instance = row.instance or row.original
            workspace_id = getattr(instance, "workspace_id", None)
            if workspace_id is None or row.import_type == "skip":
                continue
            counts = per_workspace.setdefault(workspace_id, {})
            counts[row.import_type] = counts.get(row.import_type, 0) + 1
        for workspace_id, counts in per_workspace.items():
            self._audit(request, workspace_id=workspace_id, action="import", summary=counts)


class ReadOnlyScopedAdmin(WorkspaceScopedAdmin):
    """High-volume or job rows: browse and export, never hand-edit or import."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_import_permission(self, request):
        return False


__all__ = [
    "ReadOnlyScopedAdmin",
    "SafeCSV",
    "SafeImportExportAdmin",
    "WorkspaceScopedAdmin",
    "WorkspaceScopedForm",
    "WorkspaceScopedResource",
    "admin_choices",
    "admin_users",
    "admin_workspace_ids",
    "link_refusal",
]
