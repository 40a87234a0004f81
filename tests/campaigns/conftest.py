"""The campaigns tests send to the real local SMTP server of the channels tests."""

from tests.channels.conftest import smtp_server  # noqa: F401 - fixture
