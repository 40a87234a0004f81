"""The site's 404 and 500 answers: the error body of shared/API.md under /api/ (a client
parsing JSON must never get an HTML page), the site's pages elsewhere."""

import logging
import uuid

from django.views import defaults

from config.api import error_response

log = logging.getLogger(__name__)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if _is_api(request):
        return error_response(request, 404, "Not found: no such operation or object.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        request_id = uuid.uuid4().hex[:16]
        log.error("API %s %s failed (request id %s)", request.method, request.path, request_id)
        return error_response(
            request,
            500,
            f"Something went wrong on our side; it was logged. Request id: {request_id}.",
            headers={"X-Request-ID": request_id},
        )
    return defaults.server_error(request)
