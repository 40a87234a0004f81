"""Pieces shared by the CSV downloads (People page, audience members): cells a spreadsheet
would run are neutralized, and rows are written straight into a streamed response."""


def csv_safe(value) -> str:
    """Spreadsheet apps run cells starting with = + - @ as formulas: neutralize them."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


class Echo:
    """A file-like object for csv.writer that hands each written row back instead of
    keeping it, so a StreamingHttpResponse can yield rows one by one."""

    def write(self, value):
        return value
