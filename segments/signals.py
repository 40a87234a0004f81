"""Signals other parts of Herald listen to without segments importing them."""

from django.dispatch import Signal

# Sent after a real-time segment's membership moved (on commit): workspace_id, segment_id,
# person_ids (the people who entered or left; None: anybody may have, a whole re-check).
# campaigns.banners drops its cached memberships of those people.
membership_moved = Signal()
