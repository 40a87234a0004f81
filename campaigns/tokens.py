"""Compact numbers for the public tokens (unsubscribe, tracking): ids in base 62, so a
signed token stays short in an email's links and headers."""

import string

_DIGITS = string.digits + string.ascii_letters


def b62(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 62)
        out = _DIGITS[r] + out
        if not n:
            return out


def from_b62(text: str) -> int:
    """The number `text` names; ValueError for anything b62 never writes (or > 12 digits)."""
    if not text or len(text) > 12 or any(ch not in _DIGITS for ch in text):
        raise ValueError("not base 62")
    n = 0
    for ch in text:
        n = n * 62 + _DIGITS.index(ch)
    return n
