from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self):
        import campaigns.tracking_tasks  # noqa: F401 - registers the tracking flush task

        # channels reports provider events without importing campaigns (the app chain):
        # their deliveries are matched here, in the webhook's transaction
        from campaigns.events import on_provider_events_recorded
        from channels.signals import provider_events_recorded

        provider_events_recorded.connect(
            on_provider_events_recorded, dispatch_uid="campaigns.events.provider_events"
        )
