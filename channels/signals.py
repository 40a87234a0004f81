"""What channels tell the apps above them, without importing them (the layers run
campaigns -> channels): a receiver connects in its own app's ready()."""

import django.dispatch

# Sent by channels.services.provider_events_record once a webhook's events are stored,
# inside the same transaction: `workspace_id` and `provider_message_ids` (the non-empty
# provider message ids of the events reported, new or repeated). campaigns.events maps
# them onto the ledger's deliveries.
provider_events_recorded = django.dispatch.Signal()
