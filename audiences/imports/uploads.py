"""The upload size limit of audience imports, enforced while the request body is read.

Django stores an upload as it arrives (in memory, then in a temporary file), before any
view sees it. SizeLimitUploadHandler, placed first, counts each file's bytes and stops
passing them on past the limit, so a file over it never takes more than the limit on the
disk; the body is still read to its end, so the browser gets the page that says what to
do rather than a reset connection.
"""

from django.core.files.uploadhandler import FileUploadHandler

# Room for the multipart envelope and the other fields around the file.
ENVELOPE_BYTES = 64 * 1024


class SizeLimitUploadHandler(FileUploadHandler):
    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit
        self.received = 0
        request.upload_over_limit = None  # the size received, once a file is over the limit

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.request.upload_over_limit = self.received
            return None  # not handed on: nothing past the limit is stored
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler makes the file (cut at the limit when over it)


def limit_uploads(request, limit: int) -> None:
    """Install the limit on `request`; call before anything reads request.POST/FILES."""
    request.upload_handlers.insert(0, SizeLimitUploadHandler(request, limit))


def declared_over_limit(request, limit: int) -> int | None:
    """The body size the client declared, when it is over anything the limit allows."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    return length if length > limit + ENVELOPE_BYTES else None
