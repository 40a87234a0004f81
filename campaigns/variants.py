"""A/B variants of a campaign's message: 2 to 5 versions of its main fields (a subject, a
body), each sent to a share of the recipients.

- A variant stores only the fields it changes; its message is the campaign's content with
  them laid over (`contents`). Variant A is usually the campaign's message as it is.
- Each person's variant is fixed at launch by a stable hash of (campaign, person), in the
  freeze's one INSERT ... SELECT (`assignment_sql`): the same person always lands in the
  same variant of a campaign, and the shares follow the percentages.
- With a test phase (`ab_test_percent`), only that share of the recipients is split; the
  rest are frozen held (Delivery.ab_rest, no variant yet: never claimed) until the winner
  is chosen by human open or click rate `ab_decide_hours` after the launch, then sent it
  (campaigns.services.campaign_choose_winner).
- Results per variant are compared with variant A by a two-proportion z-test
  (`compare`): the difference in points, the p-value, and a note a marketer can read.
"""

import math
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from campaigns.templating import clean_content, compile_content

MAX_VARIANTS = 5
KEYS = "ABCDE"
MAX_NAME = 60
MAX_DECIDE_HOURS = 24 * 30
# the fields a variant may change, per channel (the rest are the campaign's)
VARIANT_FIELDS = {
    "email": ("subject", "preheader", "from_name", "text", "html"),
    "sms": ("body",),
    "push": ("title", "body", "image_url", "url"),
}
HASH_BUCKETS = 10_000  # a person's hash modulo this: percentages to 0.01%
SIGNIFICANCE = 0.05  # a difference is called significant below this p-value
MIN_EXPECTED = 5  # the z-test needs at least this many successes and failures per side


def _problem(errors: dict, path: str, text: str) -> None:
    errors.setdefault(path, text)


def clean_variants(channel: str, content: dict, variants, *, draft: bool = True) -> list[dict]:
    """The variants to store, or ValidationError naming the field ("variants",
    "variants.1.percent", "variants.1.content.subject"). [] or None: no A/B test.
    Each is {"key", "name", "percent", "content"}; keys are A, B, ... in order; the
    percentages are whole numbers that add up to 100; each variant's message (the
    campaign's content with its fields laid over) is checked as the campaign's is."""
    if not variants:
        return []
    errors: dict[str, str] = {}
    if not isinstance(variants, list):
        raise ValidationError({"variants": "must be a list of variants"})
    if len(variants) < 2:
        raise ValidationError({"variants": "an A/B test needs at least 2 variants"})
    if len(variants) > MAX_VARIANTS:
        raise ValidationError({"variants": f"at most {MAX_VARIANTS} variants"})
    allowed = VARIANT_FIELDS.get(channel)
    if allowed is None:
        raise ValidationError({"variants": "only email, SMS and push campaigns have variants"})
    cleaned, total = [], 0
    for index, raw in enumerate(variants):
        path = f"variants.{index}"
        if not isinstance(raw, dict):
            _problem(errors, path, "must be an object")
            continue
        unknown = set(raw) - {"key", "name", "percent", "content"}
        if unknown:
            _problem(errors, path, f"unknown field(s): {', '.join(sorted(unknown))}")
        key = KEYS[index]
        if raw.get("key") not in (None, "", key):
            _problem(errors, f"{path}.key", f"variants are keyed in order: this one is {key}")
        name = raw.get("name") or ""
        if not isinstance(name, str) or len(name) > MAX_NAME:
            _problem(errors, f"{path}.name", f"must be text of at most {MAX_NAME} characters")
            name = ""
        percent = raw.get("percent")
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 99:
            _problem(errors, f"{path}.percent", "must be a whole number from 1 to 99")
            percent = 0
        total += percent
        own = raw.get("content") or {}
        if not isinstance(own, dict):
            _problem(errors, f"{path}.content", "must be an object")
            own = {}
        for field in sorted(set(own) - set(allowed)):
            _problem(errors, f"{path}.content.{field}", f"a variant changes only "
                     f"{', '.join(allowed)}")  # fmt: skip
        own = {k: v for k, v in own.items() if k in allowed}
        try:
            merged = clean_content(channel, {**(content or {}), **own}, draft=draft)
        except ValidationError as e:
            for field, texts in e.message_dict.items():
                target = f"{path}.content.{field}" if field in own else f"content.{field}"
                _problem(errors, target, texts[0])
            merged = {}
        cleaned.append({"key": key, "name": name.strip(), "percent": percent,
                        "content": {k: merged.get(k, v) for k, v in own.items()}})  # fmt: skip
    if not errors and total != 100:
        errors["variants"] = f"the percentages add up to {total}; they must add up to 100"
    if errors:
        raise ValidationError(errors)
    return cleaned


def clean_test(*, channel: str, tracking: bool, variants: list, percent, metric: str,
               hours) -> dict:  # fmt: skip
    """The test phase's settings, or ValidationError naming the field ("ab_test.percent",
    ...). A test phase needs variants, and a metric the channel can measure with
    tracking on (email: opens and clicks; push: opens; SMS: none)."""
    errors = {}
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 95:
        errors["ab_test.percent"] = "must be a whole number from 0 (no test phase) to 95"
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_DECIDE_HOURS:
        errors["ab_test.decide_after_hours"] = f"must be whole hours from 1 to {MAX_DECIDE_HOURS}"
    if metric not in ("open", "click"):
        errors["ab_test.metric"] = "must be “open” or “click”"
    if not errors and percent:
        if not variants:
            errors["ab_test.percent"] = "a test phase needs at least 2 variants"
        elif channel == "sms":
            errors["ab_test.percent"] = ("SMS opens and clicks are not tracked, so no winner "
                                         "can be chosen: split everyone (0) instead")  # fmt: skip
        elif channel == "push" and metric == "click":
            errors["ab_test.metric"] = "a push notification's opens are tracked, not clicks"
        elif not tracking:
            errors["ab_test.metric"] = ("tracking is off for this campaign: turn it on to "
                                        "choose a winner by opens or clicks")  # fmt: skip
    if errors:
        raise ValidationError(errors)
    return {"ab_test_percent": percent, "ab_metric": metric, "ab_decide_hours": hours}


def contents(campaign) -> dict[str, dict]:
    """{variant key: its message} ("" is the campaign's own content: a campaign without
    variants, or a held delivery)."""
    base = campaign.content or {}
    out = {"": base}
    for variant in campaign.variants or ():
        out[variant["key"]] = {**base, **(variant.get("content") or {})}
    return out


def compile_all(campaign) -> dict:
    """{variant key: CompiledContent}, each parsed once (the dispatcher's)."""
    return {key: compile_content(campaign.channel, c) for key, c in contents(campaign).items()}


def label(campaign, key: str) -> str:
    for variant in campaign.variants or ():
        if variant["key"] == key:
            return f"{key} · {variant['name']}" if variant.get("name") else key
    return key


def assignment_sql(campaign, person: str) -> tuple[str, str]:
    """(variant SQL, held SQL) over the person id column `person`: the variant by a stable
    hash of the person seeded with the campaign (cumulative percentages over
    HASH_BUCKETS), and whether they are outside the test phase (a second, independent
    hash), held with variant "" until the winner is chosen. ("''", "false") without
    variants. Formatted from integers of ours only, for a statement run with parameters
    (its modulo written %%)."""
    variants = campaign.variants or []
    if not variants:
        return "''", "false"

    def bucket(seed: int) -> str:
        return (f"(((hashtextextended({person}::text, {int(seed)}) %% {HASH_BUCKETS}) "
                f"+ {HASH_BUCKETS}) %% {HASH_BUCKETS})")  # fmt: skip

    pick, cases, upto = bucket(campaign.pk * 2), [], 0
    for variant in variants[:-1]:
        upto += int(variant["percent"]) * HASH_BUCKETS // 100
        cases.append(f"WHEN {pick} < {upto} THEN '{variant['key']}'")
    choice = f"(CASE {' '.join(cases)} ELSE '{variants[-1]['key']}' END)"
    share = int(campaign.ab_test_percent or 0)
    if not share:
        return choice, "false"
    held = f"({bucket(campaign.pk * 2 + 1)} >= {share * HASH_BUCKETS // 100})"
    return f"(CASE WHEN {held} THEN '' ELSE {choice} END)", held


@dataclass(frozen=True)
class Comparison:
    difference: float  # percentage points, this variant minus A
    p_value: float | None  # None: too few to test
    significant: bool
    note: str
    short: str  # the note in a few words, for a table cell


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test, None when a side has fewer
    than MIN_EXPECTED successes or failures expected (the normal approximation fails)."""
    if not n1 or not n2:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    for n in (n1, n2):
        if n * pooled < MIN_EXPECTED or n * (1 - pooled) < MIN_EXPECTED:
            return None
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (x2 / n2 - x1 / n1) / se
    return math.erfc(abs(z) / math.sqrt(2))


def compare(control: tuple[int, int], other: tuple[int, int], *, what: str) -> Comparison:
    """`other` (successes, trials) against `control`: the difference of the rates in
    points and whether it is more than chance."""
    (x1, n1), (x2, n2) = control, other
    difference = ((x2 / n2 if n2 else 0) - (x1 / n1 if n1 else 0)) * 100
    p = two_proportion_p(x1, n1, x2, n2)
    if p is None:
        note = f"Too few {what}s yet to tell a difference from chance."
        return Comparison(round(difference, 1), None, False, note, "too few to tell")
    significant = p < SIGNIFICANCE
    if significant:
        note = (f"Significant at 95% (p = {p:.3f}): the {what} rate differs by more than "
                "chance.")  # fmt: skip
        short = f"significant (p = {p:.3f})"
    else:
        note = f"Not significant (p = {p:.2f}): the difference may be chance."
        short = f"may be chance (p = {p:.2f})"
    return Comparison(round(difference, 1), round(p, 4), significant, note, short)


def pick_winner(results: dict[str, dict], metric: str) -> tuple[str, str]:
    """(winning key, why) by the highest human `metric` rate per message sent; a tie, or
    no data, keeps the earliest key (A, the control)."""
    field = "opened" if metric == "open" else "clicked"
    best, best_rate = None, -1.0
    for key in sorted(results):
        sent = results[key]["sent"]
        rate = results[key][field] / sent if sent else 0.0
        if rate > best_rate + 1e-12:
            best, best_rate = key, rate
    if best is None:
        return "A", "No variant was sent: A is sent to the rest."
    if best_rate <= 0:
        return best, f"No {field} message in the test yet: {best} (the first) is kept."
    what = "open" if metric == "open" else "click"
    return best, f"{best} had the highest {what} rate: {best_rate * 100:.1f}%."
