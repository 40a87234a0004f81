import unicodedata

from django.db import migrations, models

import accounts.models


def names_on_one_line(apps, schema_editor):
    """Names saved before they had to be one line: whitespace runs become one space and
    control characters go (what the form and services now do and refuse)."""
    Workspace = apps.get_model("accounts", "Workspace")
    for workspace in Workspace.objects.only("id", "name").iterator():
        kept = "".join(
            ch for ch in workspace.name if unicodedata.category(ch) != "Cc" or ch.isspace()
        )
        fixed = " ".join(kept.split()) or "Workspace"
        if fixed != workspace.name:
            Workspace.objects.filter(pk=workspace.pk).update(name=fixed)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_apikey_kind"),
    ]

    operations = [
        migrations.AlterField(
            model_name="workspace",
            name="name",
            field=models.CharField(max_length=100, validators=[accounts.models.validate_one_line]),
        ),
        migrations.RunPython(names_on_one_line, migrations.RunPython.noop),
    ]
