from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"

    def ready(self):
        # the receiver that fills a channel's CSV upload when its audience import is done
        from channels import list_services  # noqa: F401
