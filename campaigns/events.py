"""Provider events (delivered, bounced, complained, failed, opened, clicked) matched to
the ledger's deliveries by provider message id.

Placeholder entry point the dispatch calls; the provider events work fills it in."""


def apply_known_events(workspace_id: int, delivery_ids: list[int]) -> int:
    """Apply events that arrived before these deliveries' outcomes were recorded."""
    return 0
