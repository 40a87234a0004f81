"""Public campaign pages, without login: the unsubscribe page of a message (/u/<token>),
and the tracking links (/t/o/<token>.gif, /t/c/<token>; campaigns.tracking).

GET shows the page (which workspace, the address masked, a button) and changes nothing:
mail scanners open links. POST unsubscribes: RFC 8058's one-click POST that mail clients
send (body `List-Unsubscribe=One-Click`, no cookie, no CSRF token) and the page's own
button alike, at once and idempotently, answering 200 with the thank-you page (one-click
clients follow no redirect). The signed token is the only credential: anything that is not
a token of ours answers 404 and changes nothing."""

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.audit import Actor
from campaigns import tracking
from campaigns import unsubscribe as unsub
from people.selectors import dnc_is_blocked

PAGE = "campaigns/public/unsubscribe.html"
DONE = "campaigns/public/unsubscribed.html"
INVALID = "campaigns/public/unsubscribe_invalid.html"


def _one_click(request) -> bool:
    try:
        return request.POST.get("List-Unsubscribe", "") == "One-Click"
    except (MultiPartParserError, RequestDataTooBig, SuspiciousOperation, UnicodeDecodeError):
        return False  # a body we cannot read: still the POST of a valid link


def _actor(request) -> Actor:
    from axes.helpers import get_client_ip_address

    return Actor(system="unsubscribe link", ip=get_client_ip_address(request) or "")


def _invalid(request):
    return render(request, INVALID, status=404)


@csrf_exempt  # RFC 8058: the one-click POST carries no CSRF token; the signed token is the check
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token: str):
    delivery = unsub.delivery_for_token(token)
    if delivery is None:
        return _invalid(request)
    channel = delivery.campaign.channel
    address = unsub.delivery_address(delivery)
    context = {
        "token": token,
        "sender": delivery.workspace.name,
        "channel": channel,
        "masked": unsub.masked(address, channel),
    }
    if request.method != "POST":
        if dnc_is_blocked(workspace=delivery.workspace_id, channel=channel, address=address):
            return render(request, DONE, {**context, "already": True})
        return render(request, PAGE, context)
    one_click = _one_click(request)
    try:
        unsub.delivery_unsubscribe(delivery=delivery, actor=_actor(request), one_click=one_click)
    except unsub.NothingToUnsubscribe:
        return _invalid(request)
    return render(request, DONE, context)


# --- Tracking: the hot path (no database write, no session; one RPUSH) ---------------------

_NO_STORE = "no-store, no-cache, must-revalidate, private"


def _fetcher(request) -> str:
    from axes.helpers import get_client_ip_address  # the client's address behind our proxies

    return tracking.fetcher(request.META.get("HTTP_USER_AGENT", ""),
                            get_client_ip_address(request) or "")  # fmt: skip


@require_http_methods(["GET", "HEAD"])
def track_open(request, token: str):
    """The open pixel of an email, and the open a push's app reports (data["herald_open"]):
    a transparent gif, never cached (each open is a fetch); a token not ours: 404."""
    hit = tracking.read_token(token, click=False)
    if hit is None:
        return HttpResponseNotFound(b"", content_type="text/plain")
    if request.method == "GET":
        tracking.record("o", hit, _fetcher(request))
    response = HttpResponse(tracking.PIXEL, content_type="image/gif")
    response["Cache-Control"] = _NO_STORE
    return response


@require_http_methods(["GET", "HEAD"])
def track_click(request, token: str):
    """A tracked link: 302 to the address stored for the token's campaign and link index
    (never one from the request); a token not ours or a link not stored: 404."""
    hit = tracking.read_token(token, click=True)
    url = tracking.link_url(hit) if hit is not None else None
    if url is None:
        return HttpResponseNotFound(b"", content_type="text/plain")
    if request.method == "GET":
        tracking.record("c", hit, _fetcher(request))
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = _NO_STORE
    response["Referrer-Policy"] = "no-referrer"
    return response
