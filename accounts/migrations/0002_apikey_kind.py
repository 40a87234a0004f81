from django.db import migrations, models


class Migration(migrations.Migration):
    """API keys get a kind: full (what every key could do so far, hence the default for
    existing keys) or read (403 on every write)."""

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="kind",
            field=models.CharField(
                choices=[("full", "Full access"), ("read", "Read-only")],
                default="full",
                help_text="Full access reads and writes; a read-only key gets 403 on every write.",
                max_length=16,
            ),
        ),
    ]
