"""One place that decides what a role may do.

viewer reads only; ops manages people, tags, Do Not Contact, audiences and imports;
marketer also segments, campaigns and flows; admin and owner also settings, members and
API keys. Views declare the least role they need with @role_required; the decorator
records it on the view so the permission tests can walk every URL.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect

from accounts.models import Role, role_at_least

VIEW = Role.VIEWER
MANAGE_PEOPLE = Role.OPS
MANAGE_AUDIENCES = Role.OPS
MANAGE_SEGMENTS = Role.MARKETER
MANAGE_CAMPAIGNS = Role.MARKETER
MANAGE_SETTINGS = Role.ADMIN


def role_required(minimum: str = Role.VIEWER, *, write_minimum: str | None = None):
    """Require a signed-in member of the current workspace with at least `minimum`.

    With `write_minimum`, safe methods (GET, HEAD) need `minimum` and any other method
    needs `write_minimum`: one view can show a page to viewers and refuse their POSTs.
    A refusal never reads the request body; an upload view marked csrf_exempt (its CSRF
    check comes after its upload limit) is refused before anything of the upload is read.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = getattr(request, "membership", None)
            if membership is None:
                return redirect("workspace_create")
            needed = minimum
            if write_minimum and request.method not in ("GET", "HEAD", "OPTIONS"):
                needed = write_minimum
            if not role_at_least(membership.role, needed):
                # A refused request's body is never read: Django's 403 page
                # (requires_csrf_token) would otherwise parse and store a whole upload to
                # look for a CSRF token that no longer matters. Marking the CSRF check as
                # done spares it; the request is refused either way.
                request.csrf_processing_done = True
                raise PermissionDenied(
                    f"Your role ({membership.get_role_display()}) cannot do this; "
                    f"it needs {Role(needed).label} or above."
                )
            return view(request, *args, **kwargs)

        wrapped.required_role = minimum
        wrapped.required_write_role = write_minimum or minimum
        return wrapped

    return decorator
