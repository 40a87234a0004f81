"""SMS segment counts as carriers bill them: GSM-7 160 / 153 per part, UCS-2 70 / 67."""

import pytest

from channels.sms import sms_size


@pytest.mark.parametrize(
    ("body", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("Price: 5€ [now]", "GSM-7", 18, 1),  # € [ ] take two septets each
        ("Grüße à Zoë", "UCS-2", 11, 1),  # ß is GSM, but ë is not
        ("é" * 70, "GSM-7", 70, 1),
        ("ë" * 70, "UCS-2", 70, 1),
        ("ë" * 71, "UCS-2", 71, 2),
        ("🎉" * 35, "UCS-2", 70, 1),  # an emoji is two UTF-16 units
        ("🎉" * 36, "UCS-2", 72, 2),
    ],
)
def test_segments(body, encoding, units, segments):
    size = sms_size(body)
    assert (size.encoding, size.units, size.segments) == (encoding, units, segments)
