"""The site's 404 and 500 answers: the error body of shared/API.md under /api/ (a client
parsing JSON must never get an HTML page), the site's pages elsewhere."""

from django.views import defaults

from config.api import error_response, server_error_response


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if _is_api(request):
        return error_response(request, 404, "Not found: no such operation or object.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return server_error_response(request, exception=False)
    return defaults.server_error(request)
