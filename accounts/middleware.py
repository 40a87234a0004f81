"""Request middleware of accounts.

WorkspaceMiddleware sets request.workspace and request.membership for signed-in users (UI
requests). The workspace comes from the session; a user who is no longer a member of it
falls back to their first workspace. API requests resolve their workspace from the API key
instead.

BadCharacterMiddleware refuses, before any view runs, a request whose path or query string
holds a character PostgreSQL cannot store or compare.
"""

from django.http import HttpResponseBadRequest, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.selectors import default_membership
from accounts.text import FORBIDDEN_CHARACTERS, has_forbidden_character

SESSION_KEY = "workspace_id"

NOT_ALLOWED = "The address contains a character that is not allowed"


class WorkspaceMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = None
        request.workspace = None
        if not request.path_info.startswith("/api/") and request.user.is_authenticated:
            membership = default_membership(
                user=request.user, preferred_workspace_id=request.session.get(SESSION_KEY)
            )
            if membership is not None:
                if request.session.get(SESSION_KEY) != membership.workspace_id:
                    request.session[SESSION_KEY] = membership.workspace_id
                request.membership = membership
                request.workspace = membership.workspace
        if request.workspace is not None:
            # Pages show times in the workspace's time zone (Settings -> Workspace).
            with timezone.override(request.workspace.tzinfo):
                return self.get_response(request)
        return self.get_response(request)


def _forbidden_part(request) -> list[str] | None:
    """Where the request holds a forbidden character, as an API error `loc` (["path"] or
    ["query", name]); None when it holds none. Query names and values are read decoded,
    so %00 counts as the NUL it stands for."""
    if has_forbidden_character(request.path):
        return ["path"]
    for name, values in request.GET.lists():
        if has_forbidden_character(name) or any(has_forbidden_character(v) for v in values):
            # A bad name is shown with its bad characters replaced, so the answer is clean.
            return ["query", FORBIDDEN_CHARACTERS.sub("\ufffd", name)]
    return None


class BadCharacterMiddleware:
    """A NUL (also sent as %00) or a lone surrogate in the path or the query string
    answers 400 (a page) or, under /api/, 422 with the API's error body naming the
    parameter: such text would otherwise reach a query and fail there with a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        loc = _forbidden_part(request)
        if loc is None:
            return self.get_response(request)
        where = "the path" if loc == ["path"] else f"the query parameter “{loc[1]}”"
        msg = "contains a character that is not allowed (NUL or a lone surrogate)"
        if request.path_info.startswith("/api/"):
            return JsonResponse(
                {
                    "detail": f"{NOT_ALLOWED}: {where} holds a NUL or a lone surrogate.",
                    "errors": [{"loc": loc, "msg": msg}],
                },
                status=422,
                content_type="application/json; charset=utf-8",
                json_dumps_params={"ensure_ascii": False},
            )
        # Rendered without the request: no session or user has been read yet.
        page = render_to_string("400.html", {"message": f"{NOT_ALLOWED}."})
        return HttpResponseBadRequest(page)
