from django.core.management.base import BaseCommand, CommandError

from accounts.audit import Actor
from accounts.models import ApiKeyKind, Workspace
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a workspace and print it (once; only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="Workspace slug.")
        parser.add_argument("--name", default="Created from the command line")
        parser.add_argument(
            "--kind",
            "--scope",
            dest="kind",
            choices=ApiKeyKind.values,
            default=ApiKeyKind.FULL,
            help="full (default) or read: a read-only key gets 403 on every write.",
        )

    def handle(self, *args, workspace, name, kind, **options):
        ws = Workspace.objects.filter(slug=workspace).first()
        if ws is None:
            raise CommandError(f"No workspace with slug {workspace!r}.")
        _key, raw = api_key_create(
            workspace=ws, name=name, kind=kind, actor=Actor(system="manage.py create_api_key")
        )
        self.stdout.write(raw)
