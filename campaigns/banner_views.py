"""The public banner API (shared/API.md "Banners (public)"): plain Django views, no
session or CSRF (a publishable key names the workspace), CORS by the workspace's allowed
origins (campaigns.banners.cors_allowed, through django-cors-headers)."""

import json

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from campaigns import banners

MAX_BODY = 2_000


def _key(request) -> str:
    return request.headers.get("x-herald-key") or request.GET.get("key", "")


def _refused(error: banners.KeyRefused) -> JsonResponse:
    return JsonResponse({"detail": str(error)}, status=error.status)


def _no_store(response):
    response["Cache-Control"] = "no-store"  # each request draws afresh
    return response


@require_GET
def banners_get(request):
    """Per placement asked, up to its max_banners live banners for the person, drawn by
    weight; an unknown placement or person: none."""
    try:
        workspace_id = banners.key_workspace(_key(request))
    except banners.KeyRefused as e:
        return _refused(e)
    asked = [p.strip() for p in request.GET.get("placement", "").split(",") if p.strip()]
    if len(asked) > banners.MAX_PLACEMENTS:
        return JsonResponse({"detail": f"At most {banners.MAX_PLACEMENTS} placements in one "
                             "request.", "errors": [{"loc": ["query", "placement"],
                             "msg": "too many placements"}]}, status=422)  # fmt: skip
    person = request.GET.get("person", "").strip()[:255]
    found = banners.serve(workspace_id, list(dict.fromkeys(asked)), person)
    return _no_store(JsonResponse({"banners": found}))


@csrf_exempt
@require_http_methods(["POST"])
def banner_events(request):
    """{"token", "type": "impression"|"click"|"dismiss"} -> 204. The body may come as
    text/plain (a CORS simple request, sendBeacon)."""
    try:
        workspace_id = banners.key_workspace(_key(request))
    except banners.KeyRefused as e:
        return _refused(e)
    if len(request.body) > MAX_BODY:
        return JsonResponse({"detail": "The event is too large."}, status=413)
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        return JsonResponse({"detail": "Send a JSON object: {\"token\", \"type\"}."},
                            status=422)  # fmt: skip
    kind, token = data.get("type"), data.get("token")
    if kind not in banners.EVENT_TYPES:
        return JsonResponse({"detail": "type must be impression, click or dismiss.",
                             "errors": [{"loc": ["body", "type"], "msg": "unknown type"}]},
                            status=422)  # fmt: skip
    named = banners.read_token(token) if isinstance(token, str) else None
    if named is None or named[0] != workspace_id:
        return JsonResponse({"detail": "Unknown banner token.",
                             "errors": [{"loc": ["body", "token"], "msg": "not a token of "
                                         "this workspace's banners"}]}, status=422)  # fmt: skip
    banners.record(token, kind)
    return HttpResponse(status=204)
