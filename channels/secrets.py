"""Provider secrets at rest: a JSON object encrypted with MultiFernet under
settings.PROVIDER_SECRET_KEYS (the first key encrypts, every key decrypts, so keys rotate
without downtime). Secrets are write-only: nothing shows them again."""

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretsUnreadable(Exception):
    """Stored secrets that no key of PROVIDER_SECRET_KEYS opens (a key was dropped)."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.PROVIDER_SECRET_KEYS))


def seal(secrets: dict[str, str]) -> str:
    """`secrets` encrypted under the first key ("" for none)."""
    if not secrets:
        return ""
    return _current().encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()


def unseal(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        return json.loads(_current().decrypt(token.encode()))
    except InvalidToken:
        raise SecretsUnreadable(
            "The provider's secrets cannot be decrypted with PROVIDER_SECRET_KEYS: the key "
            "they were stored with is no longer listed. Add it back, or enter the secrets again."
        ) from None


def reseal(token: str) -> str:
    """The same secrets under the current first key (after a rotation)."""
    if not token:
        return ""
    try:
        return _current().rotate(token.encode()).decode()
    except InvalidToken:
        unseal(token)  # raises SecretsUnreadable, with its advice
        raise
