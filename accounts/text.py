"""What text Herald can store: the one check every layer uses (the request middleware,
person and event writes, segment rules and names)."""

import re

# NUL: PostgreSQL text cannot hold it (psycopg refuses the query). A lone surrogate (half
# of a UTF-16 pair) is not a character at all and has no UTF-8 form to send.
FORBIDDEN_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


def has_forbidden_character(text: str) -> bool:
    """Whether `text` holds a NUL or a lone surrogate: text that can be neither stored nor
    compared with what is stored."""
    return FORBIDDEN_CHARACTERS.search(text) is not None
