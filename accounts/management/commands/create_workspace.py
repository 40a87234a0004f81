from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.audit import Actor
from segments.services import workspace_setup


class Command(BaseCommand):
    help = "Create a workspace with an owner (the user is created when needed); prints the slug."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="Email of the owner.")
        parser.add_argument("--time-zone", default="UTC")

    def handle(self, *args, name, owner, time_zone, **options):
        User = get_user_model()
        email = owner.strip().lower()
        try:
            User._meta.get_field("email").run_validators(email)
        except ValidationError:
            raise CommandError(f"--owner {owner!r} is not an email address.") from None
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_user(email=email)
            self.stderr.write(
                f"Created user {email} without a password; they set one with "
                "“Forgot your password?” on the sign-in page."
            )
        try:
            workspace = workspace_setup(
                name=name,
                owner=user,
                time_zone=time_zone,
                actor=Actor(system="manage.py create_workspace"),
            )
        except ValidationError as e:
            raise CommandError("; ".join(e.messages)) from None
        self.stdout.write(workspace.slug)
