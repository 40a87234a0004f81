"""Re-encrypt every stored provider secret under the first of PROVIDER_SECRET_KEYS: after
a rotation to "NEW,OLD", run this, then drop OLD."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from channels.models import Provider
from channels.secrets import SecretsUnreadable, reseal


class Command(BaseCommand):
    help = "Re-encrypt provider secrets under the first PROVIDER_SECRET_KEYS key."

    def handle(self, *args, **options):
        done, unreadable = 0, []
        with transaction.atomic():
            for provider in Provider.objects.unscoped().select_for_update().exclude(secrets=""):
                try:
                    provider.secrets = reseal(provider.secrets)
                except SecretsUnreadable:
                    unreadable.append(provider)
                    continue
                provider.save(update_fields=["secrets"])
                done += 1
        self.stdout.write(f"{done} provider account(s) re-encrypted under the first key.")
        if unreadable:
            names = ", ".join(
                "/".join(str(part) for part in (p.workspace_id, p.channel, p.platform) if part)
                for p in unreadable
            )
            raise CommandError(
                f"{len(unreadable)} could not be decrypted with any listed key ({names}): add "
                "the key they were stored with, or enter their secrets again."
            )
