from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self):
        import campaigns.flows.tasks  # noqa: F401 - registers the flow engine's task
        import campaigns.tracking_tasks  # noqa: F401 - registers the tracking flush task

        # channels reports provider events without importing campaigns (the app chain):
        # their deliveries are matched here, in the webhook's transaction
        from campaigns.events import on_provider_events_recorded
        from channels.signals import provider_events_recorded

        provider_events_recorded.connect(
            on_provider_events_recorded, dispatch_uid="campaigns.events.provider_events"
        )

        # banners: CORS by the key's workspace; the cache dropped when banners, placements
        # or people's real-time memberships change
        from corsheaders.signals import check_request_enabled
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from campaigns import banner_signals
        from campaigns.models import Campaign, Placement
        from segments.signals import membership_moved

        check_request_enabled.connect(banner_signals.cors, dispatch_uid="campaigns.banners.cors")
        for signal in (post_save, post_delete):
            signal.connect(banner_signals.campaign_saved, sender=Campaign,
                           dispatch_uid=f"campaigns.banners.campaign.{signal}")  # fmt: skip
            signal.connect(banner_signals.placement_saved, sender=Placement,
                           dispatch_uid=f"campaigns.banners.placement.{signal}")  # fmt: skip
        for relation in (Campaign.include.through, Campaign.exclude.through):
            uid = f"campaigns.banners.m2m.{relation.__name__}"
            m2m_changed.connect(banner_signals.targeting_changed, sender=relation,
                                dispatch_uid=uid)  # fmt: skip
        membership_moved.connect(banner_signals.memberships_moved,
                                 dispatch_uid="campaigns.banners.memberships")  # fmt: skip
