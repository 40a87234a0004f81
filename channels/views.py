"""Channels in the UI: each sending channel and its provider, the Sandbox inbox."""

from django.conf import settings as django_settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.csp import CSP
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_http_methods, require_POST

from accounts.audit import Actor
from accounts.models import role_at_least
from accounts.pages import keyset_page
from accounts.permissions import MANAGE_SETTINGS, VIEW, role_required
from channels import selectors, services
from channels.forms import CATALOGUE, ProviderForm, ProviderTestForm, kinds_for, stored_rows
from channels.providers import SENDING_CHANNELS, webhook_urls
from channels.secrets import SecretsUnreadable, unseal
from channels.sms import sms_size
from people.selection import page_key

CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "push": "Push"}
PLATFORM_LABELS = {"ios": "iOS", "android": "Android", "web": "Web"}
# The provider accounts a workspace sets up on its Channels page: one per channel, push one
# per platform. channels/urls.py gives each its page.
PROVIDER_SLOTS = {"email": ("",), "sms": ("",), "push": ("ios", "android", "web")}
# Changing a provider account is a workspace setting (its secrets are the workspace's
# credentials): the API's PUT takes a full-access key, which only admins can create.
MANAGE_PROVIDERS = MANAGE_SETTINGS


def _kind_label(provider) -> str:
    kind = CATALOGUE.get(provider.kind)
    return kind.label if kind else provider.get_kind_display()


def _slot_name(channel: str, platform: str) -> str:
    """ "Email", "Push for iOS"."""
    return CHANNEL_LABELS[channel] + (f" for {PLATFORM_LABELS[platform]}" if platform else "")


def _slot_url(name: str, channel: str, platform: str) -> str:
    return reverse(name, kwargs={"channel": channel, "platform": platform})


@role_required(VIEW)
def channel_list(request):
    ws = request.workspace
    providers = selectors.providers_by_channel(workspace=ws)
    counts = selectors.sandbox_counts(workspace=ws)
    channels = []
    for channel in SENDING_CHANNELS:
        slots = [
            {"platform": PLATFORM_LABELS.get(platform, ""),
             "provider": providers.get((channel, platform)),
             "url": _slot_url("channel_provider", channel, platform)}
            for platform in PROVIDER_SLOTS[channel]
        ]  # fmt: skip
        if channel == "push" and ("push", "") in providers:
            # one push account for every platform, set through the API: shown, not edited here
            slots.insert(0, {"platform": "All platforms", "provider": providers[("push", "")],
                             "url": None})  # fmt: skip
        for slot in slots:
            slot["kind"] = _kind_label(slot["provider"]) if slot["provider"] else ""
        channels.append(
            {"key": channel, "label": CHANNEL_LABELS[channel], "slots": slots,
             "any_provider": any(slot["provider"] for slot in slots),
             "sandbox_count": counts.get(channel, 0)}
        )  # fmt: skip
    return render(
        request,
        "channels/channel_list.html",
        {
            "channels": channels,
            "can_edit": role_at_least(request.membership.role, MANAGE_PROVIDERS),
        },
    )


# --- A channel's provider account: Settings -> Channels -> Set up / Change ---------------

PROVIDER_PAGE = "channels/provider.html"
SENDS = {
    ("email", ""): "emails", ("sms", ""): "text messages",
    ("push", "ios"): "push notifications to iPhones and iPads",
    ("push", "android"): "push notifications to Android devices",
    ("push", "web"): "push notifications to web browsers",
}  # fmt: skip


def _secrets_set(provider) -> tuple[list[str], bool]:
    """The names of the provider's stored secrets, and whether they could not be read
    (a key of PROVIDER_SECRET_KEYS was dropped: the page asks for them again)."""
    if provider is None:
        return [], False
    try:
        return sorted(unseal(provider.secrets)), False
    except SecretsUnreadable:
        return [], True


def _provider_form(provider, kind, secrets_set, data=None) -> ProviderForm:
    """The form of `kind`: pre-filled with the stored settings when the stored provider is
    of that kind (its stored secrets kept when left empty), empty otherwise."""
    same = provider is not None and provider.kind == kind
    return ProviderForm(
        data, kind=kind, initial=provider.settings if same else None,
        secrets_set=secrets_set if same else (),
    )  # fmt: skip


def _webhooks(request, provider) -> dict[str, str]:
    """The URLs to paste into the provider's dashboard (they carry the webhook password:
    for the members who may change the account only)."""
    base = django_settings.PUBLIC_BASE_URL or request.build_absolute_uri("/")
    try:
        return webhook_urls(provider, base)
    except SecretsUnreadable:
        return {}


def _context(request, channel, platform, provider, *, kind, form=None, test_form=None,
             test_result=None) -> dict:  # fmt: skip
    secrets_set, unreadable = _secrets_set(provider)
    can_edit = role_at_least(request.membership.role, MANAGE_PROVIDERS)
    if can_edit and form is None:
        form = _provider_form(provider, kind, secrets_set)
    webhooks = _webhooks(request, provider) if can_edit and provider else {}
    name = _slot_name(channel, platform)
    return {
        "channel": channel, "platform": platform, "name": name, "sends": SENDS[channel, platform],
        "provider": provider,
        "can_edit": can_edit, "kind": kind, "kind_info": CATALOGUE[kind],
        "kinds": [(k, CATALOGUE[k]) for k in kinds_for(channel, platform)],
        "stored": stored_rows(provider.kind, provider.settings, secrets_set) if provider else [],
        "stored_kind": _kind_label(provider) if provider else "",
        "secrets_unreadable": unreadable, "form": form, "webhooks": webhooks,
        "test_form": test_form or ProviderTestForm(channel=channel), "test_result": test_result,
        "page_url": _slot_url("channel_provider", channel, platform),
        "test_url": _slot_url("channel_provider_test", channel, platform),
    }  # fmt: skip


def _default_kind(channel, platform, provider) -> str:
    """The stored account's kind, or the first the account may be (a push platform's own
    service first: APNs for iOS)."""
    kinds = kinds_for(channel, platform)
    return provider.kind if provider is not None and provider.kind in kinds else kinds[0]


@never_cache  # an admin's page holds the webhook URLs, which carry their password
@require_http_methods(["GET", "HEAD", "POST"])
@role_required(VIEW, write_minimum=MANAGE_PROVIDERS)
def provider_page(request, channel, platform=""):
    """The channel's provider account: what is stored, and (for admins) the form to set it,
    one kind at a time (?kind= shows another kind's fields; htmx swaps just them)."""
    ws = request.workspace
    provider = selectors.find_provider(workspace=ws, channel=channel, platform=platform)
    if request.method != "POST":
        asked = request.GET.get("kind", "")
        kind = (
            asked
            if asked in kinds_for(channel, platform)
            else _default_kind(channel, platform, provider)
        )
        context = _context(request, channel, platform, provider, kind=kind)
        if request.htmx and not request.htmx.history_restore_request and context["can_edit"]:
            return render(request, f"{PROVIDER_PAGE}#fields", context)
        return render(request, PROVIDER_PAGE, context)
    kind = request.POST.get("kind", "")
    if kind not in kinds_for(channel, platform):
        context = _context(request, channel, platform, provider,
                           kind=_default_kind(channel, platform, provider))  # fmt: skip
        context["kind_error"] = "Choose one of the providers listed."
        return render(request, PROVIDER_PAGE, context)
    form = _provider_form(provider, kind, _secrets_set(provider)[0], data=request.POST)
    if form.is_valid():
        settings, secrets = form.provider_values()
        try:
            saved = services.provider_set(
                workspace=ws, channel=channel, platform=platform, kind=kind, settings=settings,
                secrets=secrets, actor=Actor.from_request(request),
            )  # fmt: skip
        except ValidationError as e:
            form.add_provider_errors(e)
        except SecretsUnreadable as e:
            form.add_error(None, str(e))
        else:
            messages.success(
                request,
                f"The {_slot_name(channel, platform)} provider is saved: {_kind_label(saved)}. "
                "Send a test message to check that it works.",
            )
            return redirect(_slot_url("channel_provider", channel, platform))
    return render(
        request, PROVIDER_PAGE, _context(request, channel, platform, provider, kind=kind, form=form)
    )


@require_POST
@role_required(MANAGE_PROVIDERS)
def provider_send_test(request, channel, platform=""):
    """Send one message now through the stored account and show what the provider said
    (htmx: just the answer, under the form)."""
    provider = selectors.find_provider(workspace=request.workspace, channel=channel,
                                       platform=platform)  # fmt: skip
    if provider is None:
        raise Http404(f"No {channel} provider is set up.")
    form = ProviderTestForm(request.POST, channel=channel)
    result = None
    if form.is_valid():
        result = services.provider_test(
            provider=provider, message=form.message(), actor=Actor.from_request(request)
        )
        provider.refresh_from_db(fields=["verified_at"])
    context = _context(request, channel, platform, provider,
                       kind=_default_kind(channel, platform, provider), test_form=form,
                       test_result=result)  # fmt: skip
    if request.htmx:  # the answer, and the saved account's "tested" status out of band
        return render(request, f"{PROVIDER_PAGE}#test", context | {"oob": True})
    return render(request, PROVIDER_PAGE, context)


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
