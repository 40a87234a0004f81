"""How many SMS segments a body costs: GSM-7 when every character is in the GSM 03.38
alphabet (the extension characters take two septets), UCS-2 otherwise (UTF-16 code
units: an emoji takes two). Shown beside the SMS editor and the Sandbox inbox."""

import math
from dataclasses import dataclass

GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" | "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int  # what each segment holds at this length


def sms_size(body: str) -> SmsSize:
    if all(c in GSM_BASIC or c in GSM_EXTENSION for c in body):
        units = sum(2 if c in GSM_EXTENSION else 1 for c in body)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return SmsSize(encoding, units, 1 if units else 0, single)
    return SmsSize(encoding, units, math.ceil(units / multi), multi)
