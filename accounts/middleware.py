"""Sets request.workspace and request.membership for signed-in users (UI requests).

The workspace comes from the session; a user who is no longer a member of it falls back
to their first workspace. API requests resolve their workspace from the API key instead.
"""

from django.utils import timezone

from accounts.selectors import default_membership

SESSION_KEY = "workspace_id"


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
