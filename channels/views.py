"""Channels in the UI: each sending channel and its provider, the Sandbox inbox."""

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.csp import CSP
from django.utils.http import urlencode
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csp import csp_override

from accounts.pages import keyset_page
from accounts.permissions import VIEW, role_required
from channels import selectors
from channels.providers import SENDING_CHANNELS
from channels.sms import sms_size
from people.selection import page_key

CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "push": "Push"}
PUSH_PLATFORMS = (("", "All platforms"), ("ios", "iOS"), ("android", "Android"), ("web", "Web"))


@role_required(VIEW)
def channel_list(request):
    ws = request.workspace
    providers = selectors.providers_by_channel(workspace=ws)
    counts = selectors.sandbox_counts(workspace=ws)
    channels = []
    for channel in SENDING_CHANNELS:
        keys = [(channel, "")] if channel != "push" else [(channel, p) for p, _ in PUSH_PLATFORMS]
        accounts = [
            {"platform": dict(PUSH_PLATFORMS).get(platform, "") if channel == "push" else "",
             "provider": providers[(channel, platform)]}
            for _, platform in keys
            if (channel, platform) in providers
        ]  # fmt: skip
        channels.append(
            {"key": channel, "label": CHANNEL_LABELS[channel], "accounts": accounts,
             "sandbox_count": counts.get(channel, 0)}
        )  # fmt: skip
    return render(request, "channels/channel_list.html", {"channels": channels})


@role_required(VIEW)
def sandbox_inbox(request):
    ws = request.workspace
    channel = request.GET.get("channel", "")
    if channel not in SENDING_CHANNELS:
        channel = ""
    after = page_key(request.GET.get("after", ""))
    before = page_key(request.GET.get("before", "")) if after is None else None
    page = keyset_page(
        selectors.sandbox_messages(workspace=ws, channel=channel), after=after, before=before
    )
    counts = selectors.sandbox_counts(workspace=ws)
    tabs = [{"key": "", "label": "All", "count": sum(counts.values())}] + [
        {"key": c, "label": CHANNEL_LABELS[c], "count": counts.get(c, 0)} for c in SENDING_CHANNELS
    ]
    return render(
        request,
        "channels/sandbox_inbox.html",
        {
            "messages_page": page.items, "channel": channel, "tabs": tabs,
            "next_after": page.next_key, "prev_before": page.prev_key,
            "qs": urlencode({"channel": channel}) if channel else "",
        },
    )  # fmt: skip


@role_required(VIEW)
def sandbox_message(request, message_id):
    message = selectors.get_sandbox_message_or_404(workspace=request.workspace, pk=message_id)
    size = sms_size(message.body) if message.channel == "sms" else None
    return render(
        request,
        "channels/sandbox_message.html",
        {"message": message, "size": size, "label": CHANNEL_LABELS.get(message.channel, "")},
    )


# The HTML part as the recipient's mail client would get it, for the inbox's sandboxed
# iframe: its own styles and remote images may load, nothing may run, submit or navigate.
MESSAGE_HTML_CSP = {
    "default-src": [CSP.NONE],
    "style-src": [CSP.UNSAFE_INLINE, "https:"],
    "img-src": ["https:", "http:", "data:"],
    "font-src": ["https:", "data:"],
    "frame-ancestors": [CSP.SELF],
    "form-action": [CSP.NONE],
    "sandbox": True,  # a bare "sandbox": no scripts, forms, popups or same-origin access
}


@role_required(VIEW)
@xframe_options_sameorigin
@csp_override(MESSAGE_HTML_CSP)
def sandbox_message_html(request, message_id):
    message = selectors.get_sandbox_message_or_404(workspace=request.workspace, pk=message_id)
    response = HttpResponse(message.html, content_type="text/html; charset=utf-8")
    response["Referrer-Policy"] = "no-referrer"
    return response
