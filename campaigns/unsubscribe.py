"""Unsubscribe (shared/API.md "Tracking, unsubscribe"): the signed token of a delivery,
the List-Unsubscribe headers every marketing email carries, the SMS opt-out line.

Placeholder entry points the dispatch calls; the unsubscribe work fills them in."""


def email_headers(campaign, delivery_id: int, address: str) -> dict[str, str]:
    """The headers a marketing email of this delivery carries."""
    return {}


def sms_body(campaign, body: str) -> str:
    """The SMS body as sent: with the workspace's opt-out line when it has one."""
    return body
