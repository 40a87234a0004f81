from accounts.navigation import nav_for
from accounts.selectors import workspaces_of


def workspace(request):
    """The current workspace, the user's role, the navigation and the switcher's choices."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "workspace": getattr(request, "workspace", None),
        "membership": membership,
        "user_workspaces": workspaces_of(user=user),
        "nav_items": nav_for(role=membership.role if membership else None, path=request.path),
    }
