from django.apps import AppConfig
from django.db.models.signals import post_save


class SegmentsConfig(AppConfig):
    name = "segments"

    def ready(self):
        from accounts.models import Workspace

        post_save.connect(_give_predefined_segments, sender=Workspace, dispatch_uid="predefined")


def _give_predefined_segments(sender, instance, created, raw=False, **kwargs):
    """Every workspace is created with the built-in segments (Active / Inactive Mobile
    Users). A signal, because workspaces live below segments in the app chain."""
    if created and not raw:
        from segments.services import ensure_predefined

        ensure_predefined(workspace=instance)
