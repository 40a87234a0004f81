"""Give the built-in segments to workspaces that existed before segments did."""

from django.db import migrations

PREDEFINED = {
    "active_mobile_users": (
        "Active Mobile Users",
        {"event": "App Launch", "count": {"op": "gte", "value": 1},
         "time": {"op": "within_last", "amount": 30, "unit": "days"}},
    ),
    "inactive_mobile_users": (
        "Inactive Mobile Users",
        {"all": [
            {"event": "App Launch"},
            {"event": "App Launch", "count": {"op": "eq", "value": 0},
             "time": {"op": "within_last", "amount": 30, "unit": "days"}},
        ]},
    ),
}  # fmt: skip


def forwards(apps, schema_editor):
    Workspace = apps.get_model("accounts", "Workspace")
    Segment = apps.get_model("segments", "Segment")
    for workspace in Workspace.objects.all():
        for key, (name, rules) in PREDEFINED.items():
            if not Segment.objects.filter(workspace=workspace, predefined=key).exists():
                Segment.objects.create(
                    workspace=workspace, name=name, kind="snapshot", rules=rules, predefined=key
                )


class Migration(migrations.Migration):
    dependencies = [("segments", "0001_initial"), ("accounts", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
