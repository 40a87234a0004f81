"""Campaign content: the shape each channel's content takes, checked when the editor saves
it (`clean_content`), and the Liquid templates in it, compiled once per campaign
(`compile_content`) and rendered once per recipient by the dispatcher
(`CompiledContent.render`).

Text fields are Liquid (python-liquid) over one variable, `person`: the built-in fields and
`person.attributes`, the custom ones. The sandbox: no loader and no `include` / `render`
tags (a template reaches no file and no other template), no `safe` filter, an unknown
variable renders empty (`liquid.Undefined`), and limits on loop iterations, output and
assigned data so that no template can hang or exhaust a worker.

Email HTML is stored sanitized. CSS is inlined first (css-inline), because the sanitizer
(nh3) drops `<style>` blocks: what they say moves into `style` attributes, and what cannot
be inlined (media queries, :hover) is lost. The Liquid in the HTML is kept out of both
passes' way (see `_clean_html`), and every rendered HTML body is sanitized again, because
Liquid can assemble markup the stored template does not show (`{{ "<scr" | append: "ipt>" }}`,
or an `{% if %}` joining an attribute to the text after it).

Cost per person of `render` (CPython 3.13, one core, all five email fields, the context
from a `.values()` row included): ~330 µs for a 9 KB HTML email with six Liquid outputs, an
`if` and a loop, of which ~165 µs is the second nh3 pass and ~75 µs the HTML's Liquid;
~650 µs for 16 KB with 65 outputs (python-liquid spends ~4 µs per output). 100,000 people:
30 to 65 s of CPU, spread over the dispatch workers.
"""

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import css_inline
import liquid
import nh3
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from liquid.exceptions import LiquidError, ResourceLimitError

from accounts.text import has_forbidden_character
from channels.sms import sms_size
from people.models import BUILTIN_FIELDS, Person

MAX_BODY_BYTES = 1_048_576  # 1 MB: an email's text or HTML, as stored and as rendered
MAX_SUBJECT_CHARS = 998  # RFC 5322's line limit
MAX_SMS_CHARS = 1_600  # the longest SMS body providers take (Twilio: 1,600 characters)
MAX_PUSH_BUTTONS = 3  # Android shows at most three actions
MAX_PUSH_DATA_BYTES = 3_000  # of FCM's and APNs' 4 KB payload, what custom data may take
MAX_LINK_CHARS = 2_048

CHANNELS = ("email", "sms", "push", "banner")

# The content fields that are Liquid templates; "*" stands for each button's index.
TEMPLATED_FIELDS = {
    "email": ("subject", "preheader", "from_name", "text", "html"),
    "sms": ("body",),
    "push": ("title", "body", "url", "buttons.*.title", "buttons.*.url"),
    # a banner shows the same text to everyone it targets (campaigns.banners serves it
    # from a cache, not rendered per person): no Liquid, refused in _clean_shape
    "banner": (),
}


# --- The Liquid sandbox ------------------------------------------------------------------


class _SandboxEnvironment(liquid.Environment):
    # python-liquid reads its resource limits from these class attributes (None = none).
    # Rendering a body stops with a ResourceLimitError rather than running on:
    loop_iteration_limit = 10_000  # iterations per render, nested loops counted together
    output_stream_limit = MAX_BODY_BYTES  # characters a render may write
    # What `assign` and `capture` may hold (bytes, as sys.getsizeof counts them): 256 KB
    # keeps `{% assign n = n | times: n %}` repeated from spending more than ~0.2 s on
    # ever larger integers before it is stopped.
    local_namespace_limit = 262_144
    # context_depth_limit keeps python-liquid's 30.

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        # No template reaches another one or a file (the loader is an empty DictLoader
        # anyway); without the tags, `{% include %}` is an error on save, at its line.
        del self.tags["include"]
        del self.tags["render"]
        # `safe` would let a person's data through the HTML autoescape unescaped.
        self.filters.pop("safe", None)


# STRICT: a syntax error raises (on save) instead of rendering half a template. Undefined
# (python-liquid's default, named here on purpose): an unknown variable or attribute is
# empty, false and an empty loop, and `default` replaces it; it never raises.
_TEXT_ENV = _SandboxEnvironment(tolerance=liquid.Mode.STRICT, undefined=liquid.Undefined)
# The HTML body only: what a person's data puts into the HTML is escaped.
_HTML_ENV = _SandboxEnvironment(
    tolerance=liquid.Mode.STRICT, undefined=liquid.Undefined, autoescape=True
)


class _FieldProblem(Exception):
    """What is wrong with one field's value (the message shown after the field's path)."""


def _line_of(source: str, index: int) -> int:
    return source.count("\n", 0, index) + 1


_LIQUID_MARK = re.compile(r"\{\{|\{%")


def _has_liquid(source: str) -> bool:
    return _LIQUID_MARK.search(source) is not None


def _liquid_problem(error: Exception) -> str:
    """`line N: what is wrong` of an error python-liquid raised."""
    if not isinstance(error, LiquidError):
        # A filter's own exception (e.g. an integer too large to print): no line to name.
        return f"the template failed: {error}"
    message = error.message or str(error).split("\n", 1)[0]
    if message in ("unexpected tag 'include'", "unexpected tag 'render'"):
        message += " (campaign templates cannot include other templates or files)"
    if isinstance(error, ResourceLimitError):
        message += " (campaign templates are limited so that none can hang a send)"
    token = error.token
    if token is None or not token.source:
        return message
    return f"line {_line_of(token.source, token.start_index)}: {message}"


def _compile(source: str, *, html: bool) -> liquid.BoundTemplate:
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def _check_template(source: str, *, html: bool) -> None:
    """Compile `source` as on save: a LiquidError for a syntax error, _FieldProblem for a
    filter python-liquid does not know (it would only fail when rendered)."""
    env = _HTML_ENV if html else _TEXT_ENV
    analysis = env.from_string(source).analyze()
    for name, spans in analysis.filters.items():
        if name not in env.filters:
            raise _FieldProblem(f"line {_line_of(source, spans[0].index)}: unknown filter '{name}'")


# --- Email HTML: inline the CSS, sanitize, keep the Liquid --------------------------------

# load_remote_stylesheets=False: a <link> or @import never makes the server fetch a URL
# (nor read a file); those tags are dropped.
_INLINER = css_inline.CSSInliner(
    load_remote_stylesheets=False, keep_style_tags=False, keep_link_tags=False
)

_EMAIL_TAGS = nh3.ALLOWED_TAGS | {"font", "tfoot"}
_EMAIL_ATTRIBUTES = {
    # style is kept whole: nh3's property filter rewrites values (and the Liquid in
    # them), and mail clients filter CSS themselves.
    "*": {"style", "align", "valign", "width", "height", "bgcolor", "dir", "lang", "title"},
    # data-herald-notrack: the link is not tracked (campaigns.tracking)
    "a": {"href", "hreflang", "name", "target", "data-herald-notrack"},
    "img": {"src", "alt", "border"},
    "table": {"border", "cellpadding", "cellspacing", "role", "summary"},
    "td": {"colspan", "rowspan", "nowrap", "headers"},
    "th": {"colspan", "rowspan", "nowrap", "headers", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
    "ul": {"type"},
    "font": {"color", "face", "size"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "time": {"datetime"},
    "hr": {"size", "noshade"},
}
_CLEANER_OPTIONS = {
    "tags": _EMAIL_TAGS,
    # Dropped with their content; every other tag not allowed is dropped, its text kept.
    "clean_content_tags": {"script", "style", "title"},
    "attributes": _EMAIL_ATTRIBUTES,
    "url_schemes": {"http", "https", "mailto"},
}
# On save, comments are kept: they carry the Liquid (see _clean_html); the author's own
# comments (Outlook's conditional ones too) are removed after.
_STORE_CLEANER = nh3.Cleaner(strip_comments=False, **_CLEANER_OPTIONS)
_RENDER_CLEANER = nh3.Cleaner(strip_comments=True, **_CLEANER_OPTIONS)

_LIQUID_SPAN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_REMOVED_LIQUID = (
    "{span} was removed with the HTML around it: Liquid cannot sit in a <style> block, a "
    "comment, a tag or attribute name, or in what the sanitizer drops (<script>, event "
    "handlers such as onclick, javascript: links)"
)


def _clean_html(source: str) -> str:
    """Inline the CSS and sanitize `source`, keeping its Liquid as written.

    Each Liquid tag or output is swapped for a comment (with a nonce no author can know)
    before the two HTML passes: a comment survives where HTML allows no text (between
    table rows, where the parser would move `{% for %}` out of the table), and in an
    attribute its text is kept as the value. After the passes, the comments are swapped
    back; a Liquid piece that did not come back, or came back out of order, is an error
    at its line. Outside its Liquid, the stored HTML holds nothing the sanitizer refuses;
    what the Liquid makes of it is sanitized again when rendered (CompiledContent.render)."""
    spans: list[re.Match] = []
    nonce = secrets.token_hex(8)

    def protect(match: re.Match) -> str:
        spans.append(match)
        return f"<!--hq{nonce}.{len(spans) - 1}-->"

    protected = _LIQUID_SPAN.sub(protect, source)
    try:
        inlined = _INLINER.inline(protected)
    except css_inline.InlineError as error:
        raise _FieldProblem(f"the CSS could not be inlined: {error}") from error
    sanitized = _STORE_CLEANER.clean(inlined)

    # The serializer escapes "<" in text and in attribute values, so each "<!--" starts a
    # real comment (ours, or the author's, dropped); ours in an attribute is escaped.
    pieces = re.compile(
        rf"<!--hq{nonce}\.(\d+)-->|&lt;!--hq{nonce}\.(\d+)--&gt;|<!--.*?-->", re.DOTALL
    )
    seen: list[int] = []

    def restore(match: re.Match) -> str:
        index = match.group(1) or match.group(2)
        if index is None:
            return ""
        seen.append(int(index))
        return spans[int(index)].group(0)

    restored = pieces.sub(restore, sanitized)
    if seen != list(range(len(spans))):
        lost = next((i for i, found in enumerate(seen) if found != i), len(seen))
        span = spans[min(lost, len(spans) - 1)]
        raise _FieldProblem(
            f"line {_line_of(source, span.start())}: "
            + _REMOVED_LIQUID.format(span=_shorten(span.group(0)))
        )
    return restored.strip()  # what lay between </head> and <body>, and the like


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Checking the shape of content -------------------------------------------------------

_FORBIDDEN_SCHEMES = {"javascript", "vbscript", "data", "file"}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_CONTROL_AND_SPACE = re.compile(r"[\x00-\x20\x7f]")
_validate_web_url = URLValidator(schemes=["http", "https"])
_BUTTON_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_RESERVED_DATA_KEYS = {"from", "notification", "message_type", "collapse_key", "priority"}


def _link_is_allowed(value: str) -> bool:
    """A link a push or banner may open: a web address or an app's deep link
    (`myapp://...`), never a script or an embedded document. Browsers ignore spaces and
    control characters inside a scheme, so they are ignored here too."""
    match = _SCHEME.match(_CONTROL_AND_SPACE.sub("", value))
    return match is None or match.group(1).lower() not in _FORBIDDEN_SCHEMES


@dataclass(frozen=True)
class _Text:
    limit: int
    bytes: bool = False  # measure UTF-8 bytes (a body) rather than characters
    one_line: bool = False  # a header: a line break would end it
    link: bool = False
    html: bool = False


@dataclass(frozen=True)
class _Choice:
    choices: tuple[str, ...]


@dataclass(frozen=True)
class _Int:
    low: int
    high: int


class _Bool:
    pass


class _Email:
    pass


class _WebUrl:
    pass


_EMAIL_SPEC = {
    "subject": _Text(MAX_SUBJECT_CHARS, one_line=True),
    "preheader": _Text(500, one_line=True),
    "from_name": _Text(200, one_line=True),
    "reply_to": _Email(),
    "text": _Text(MAX_BODY_BYTES, bytes=True),
    "html": _Text(MAX_BODY_BYTES, bytes=True, html=True),
}
_SMS_SPEC = {"body": _Text(MAX_SMS_CHARS)}
_PUSH_SPEC = {
    "title": _Text(200, one_line=True),
    "body": _Text(2_000),
    "image_url": _WebUrl(),
    "url": _Text(MAX_LINK_CHARS, one_line=True, link=True),
}
_BUTTON_SPEC = {
    "title": _Text(50, one_line=True),
    "url": _Text(MAX_LINK_CHARS, one_line=True, link=True),
}
_IOS_SPEC = {
    "sound": _Text(64, one_line=True),
    "badge": _Int(0, 99_999),
    "category": _Text(64, one_line=True),
    "interruption_level": _Choice(("passive", "active", "time-sensitive", "critical")),
    "thread_id": _Text(64, one_line=True),
}
_ANDROID_SPEC = {
    "channel_id": _Text(64, one_line=True),
    "priority": _Choice(("normal", "high")),
    "ttl_seconds": _Int(0, 2_419_200),  # FCM keeps a message at most 28 days
    "icon": _Text(64, one_line=True),
    "color": _Text(7, one_line=True),
}
_BANNER_SPEC = {
    "placement": _Text(100, one_line=True),
    "title": _Text(200, one_line=True),
    "body": _Text(2_000),
    "image_url": _WebUrl(),
    "cta_label": _Text(100, one_line=True),
    "cta_url": _WebUrl(),
    "priority": _Int(1, 100),
    "dismissible": _Bool(),
}
_PUSH_PARTS = ("buttons", "ios", "android", "data")  # checked in _clean_shape
_BANNER_DEFAULTS = {"priority": 50, "dismissible": True}

# The longest rendered value of each templated field; "*" matches a button's index.
_RENDER_SPECS = {
    "email": _EMAIL_SPEC,
    "sms": _SMS_SPEC,
    "push": {**_PUSH_SPEC, "buttons.*.title": _BUTTON_SPEC["title"],
             "buttons.*.url": _BUTTON_SPEC["url"]},
    "banner": _BANNER_SPEC,
}  # fmt: skip


def _too_long(value: str, spec: _Text) -> str:
    """The message for a value over its limit, or ""."""
    if spec.bytes:
        size = len(value.encode())
        if size > spec.limit:
            return f"is {size:,} bytes long; at most 1 MB ({spec.limit:,} bytes) may be sent"
        return ""
    if len(value) > spec.limit:
        return f"is {len(value):,} characters long; at most {spec.limit:,}"
    return ""


def _check_value(value, spec, path: str, errors: dict):
    """The value to store, or None after adding the problem to `errors`."""
    if isinstance(spec, _Text | _Email):
        if not isinstance(value, str):
            errors[path] = "must be text"
            return None
        if has_forbidden_character(value):
            errors[path] = "holds a character that cannot be stored (a NUL or a lone surrogate)"
            return None
    if isinstance(spec, _Email):
        value = value.strip()
        if value:
            try:
                validate_email(value)
            except ValidationError:
                errors[path] = "must be an email address"
                return None
        return value
    if isinstance(spec, _Text):
        if problem := _too_long(value, spec):
            errors[path] = problem
            return None
        if spec.one_line and ("\n" in value or "\r" in value):
            errors[path] = "must be one line"
            return None
        if spec.link and not _has_liquid(value) and not _link_is_allowed(value):
            errors[path] = "must be a web address or an app link (not javascript: or data:)"
            return None
        return value
    if isinstance(spec, _WebUrl):
        if not isinstance(value, str):
            errors[path] = "must be text"
            return None
        value = value.strip()
        if value:
            try:
                _validate_web_url(value)
            except ValidationError:
                errors[path] = "must be an http:// or https:// address"
                return None
        return value
    if isinstance(spec, _Choice):
        if value not in spec.choices:
            errors[path] = "must be one of " + ", ".join(f"“{c}”" for c in spec.choices)
            return None
        return value
    if isinstance(spec, _Int):
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not (spec.low <= value <= spec.high)
        ):
            errors[path] = f"must be a whole number from {spec.low} to {spec.high:,}"
            return None
        return value
    if not isinstance(value, bool):
        errors[path] = "must be true or false"
        return None
    return value


def _check_object(
    raw, spec: dict, path: str, errors: dict, *, extra_keys: tuple = (), defaults: bool = True
) -> dict:
    """The known keys of `raw` checked against `spec`; unknown keys are errors. With
    `defaults`, a missing text is stored as "" (so every stored content has every field)."""
    prefix = f"{path}." if path else ""
    if not isinstance(raw, Mapping):
        errors[path or "content"] = "must be an object"
        return {}
    known = (*spec, *extra_keys)
    for key in raw:
        if key not in known:
            errors[f"{prefix}{key}"] = "unknown field; the fields are " + ", ".join(known)
    cleaned = {}
    for key, item_spec in spec.items():
        if key not in raw or raw[key] is None:
            if defaults and isinstance(item_spec, _Text | _Email | _WebUrl):
                cleaned[key] = ""
            continue
        value = _check_value(raw[key], item_spec, f"{prefix}{key}", errors)
        if value is not None:
            cleaned[key] = value
    return cleaned


def _clean_buttons(raw, errors: dict) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors["buttons"] = "must be a list"
        return []
    if len(raw) > MAX_PUSH_BUTTONS:
        errors["buttons"] = f"at most {MAX_PUSH_BUTTONS} buttons"
        return []
    buttons, ids = [], set()
    for index, button in enumerate(raw):
        path = f"buttons.{index}"
        cleaned = _check_object(button, _BUTTON_SPEC, path, errors, extra_keys=("id",))
        if not isinstance(button, Mapping):
            continue
        button_id = button.get("id")
        if not isinstance(button_id, str) or not _BUTTON_ID.match(button_id):
            errors[f"{path}.id"] = "must be 1 to 64 letters, digits, “_”, “.” or “-”"
        elif button_id in ids:
            errors[f"{path}.id"] = f"another button has the id “{button_id}”"
        ids.add(button_id)
        if not cleaned.get("title", "").strip():
            errors.setdefault(f"{path}.title", "a button needs a title")
        buttons.append({"id": button_id, **cleaned})
    return buttons


def _clean_data(raw, errors: dict) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors["data"] = "must be an object"
        return {}
    data = {}
    for key, value in raw.items():
        path = f"data.{key}"
        if not isinstance(key, str) or not key or len(key) > 64 or has_forbidden_character(key):
            errors[path] = "a data key is 1 to 64 characters"
        elif key.lower() in _RESERVED_DATA_KEYS or key.lower().startswith(("google", "gcm")):
            errors[path] = "this key is reserved by the push services"
        elif not isinstance(value, str) or has_forbidden_character(value):
            errors[path] = "data values must be text (push services carry text only)"
        else:
            data[key] = value
    size = sum(len(k.encode()) + len(v.encode()) + 6 for k, v in data.items())
    if size > MAX_PUSH_DATA_BYTES:
        errors["data"] = f"is {size:,} bytes; at most {MAX_PUSH_DATA_BYTES:,} fit in a push"
    return data


def _clean_shape(channel: str, content, errors: dict, *, draft: bool) -> dict:
    if channel == "email":
        cleaned = _check_object(content, _EMAIL_SPEC, "", errors)
        if not draft and not errors:
            if not cleaned["subject"].strip():
                errors["subject"] = "an email needs a subject"
            if not cleaned["text"].strip() and not cleaned["html"].strip():
                errors["html"] = "an email needs a text or an HTML body"
    elif channel == "sms":
        cleaned = _check_object(content, _SMS_SPEC, "", errors)
        if not draft and not errors and not cleaned["body"].strip():
            errors["body"] = "an SMS needs a body"
    elif channel == "push":
        cleaned = _check_object(content, _PUSH_SPEC, "", errors, extra_keys=_PUSH_PARTS)
        if isinstance(content, Mapping):
            cleaned["buttons"] = _clean_buttons(content.get("buttons"), errors)
            for key, spec in (("ios", _IOS_SPEC), ("android", _ANDROID_SPEC)):
                raw = content.get(key)
                cleaned[key] = {} if raw is None else _check_object(
                    raw, spec, key, errors, defaults=False
                )  # fmt: skip
            color = cleaned["android"].get("color")
            if color is not None and not _COLOR.match(color):
                errors["android.color"] = "must be a colour as #RRGGBB"
            cleaned["data"] = _clean_data(content.get("data"), errors)
        if not draft and not errors and not (cleaned["title"].strip() or cleaned["body"].strip()):
            errors["title"] = "a push needs a title or a body"
    else:
        cleaned = _check_object(content, _BANNER_SPEC, "", errors)
        for key, default in _BANNER_DEFAULTS.items():
            cleaned.setdefault(key, default)
        for key in ("title", "body", "cta_label"):
            if isinstance(cleaned.get(key), str) and _has_liquid(cleaned[key]):
                errors[key] = ("a banner shows the same text to everyone it targets: Liquid "
                               "({{ }}, {% %}) is not available in banners")  # fmt: skip
        if not draft and not errors:
            if not cleaned["placement"].strip():
                errors["placement"] = "a banner needs a placement"
            if not (cleaned["title"].strip() or cleaned["body"].strip()):
                errors["title"] = "a banner needs a title or a body"
    return cleaned


def _templated_paths(channel: str, content: dict) -> list[tuple[str, tuple]]:
    """(field path, key path) of each templated field present in `content`."""
    paths = []
    for field in TEMPLATED_FIELDS[channel]:
        if field.startswith("buttons.*."):
            key = field.removeprefix("buttons.*.")
            for index, button in enumerate(content.get("buttons", ())):
                if key in button:
                    paths.append((f"buttons.{index}.{key}", ("buttons", index, key)))
        elif field in content:
            paths.append((field, (field,)))
    return paths


def _get(content: dict, keys: tuple):
    value = content
    for key in keys:
        value = value[key]
    return value


def _set(content: dict, keys: tuple, value) -> None:
    target = content
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value


def _check_channel(channel: str) -> None:
    if channel not in TEMPLATED_FIELDS:
        raise ValidationError({"channel": f"must be one of {', '.join(CHANNELS)}"})


def clean_content(channel: str, content: dict, *, draft: bool = False) -> dict:
    """The content to store, or ValidationError({"<field path>": "<problem>"}).

    Checks the channel's shape (unknown fields refused, types, lengths: a subject 998
    characters, a body 1 MB), compiles every templated field (a syntax error is
    "line N: ..." under the field's path, e.g. "buttons.1.title"), inlines the email
    HTML's CSS and sanitizes it, and renders once for a person with no data so that a
    template that breaks a limit (a huge loop) is refused now rather than at send.
    Missing text fields are stored as "" (banners' priority as 50, dismissible true).
    `draft`: the fields a send needs (a subject, an SMS body...) may still be empty."""
    _check_channel(channel)
    errors: dict[str, str] = {}
    cleaned = _clean_shape(channel, content, errors, draft=draft)
    if errors:
        raise ValidationError(errors)
    for name, keys in _templated_paths(channel, cleaned):
        source = _get(cleaned, keys)
        is_html = keys == ("html",)
        try:
            if _has_liquid(source):
                _check_template(source, html=is_html)  # first: its lines are the author's
            if is_html and source:
                html = _clean_html(source)
                if problem := _too_long(html, _EMAIL_SPEC["html"]):
                    raise _FieldProblem("after inlining its CSS, the HTML " + problem)
                _check_template(html, html=True)
                _set(cleaned, keys, html)
        except LiquidError as error:
            errors[name] = _liquid_problem(error)
        except _FieldProblem as error:
            errors[name] = str(error)
    if errors:
        raise ValidationError(errors)
    try:
        compile_content(channel, cleaned).render(_EMPTY_PERSON)
    except RenderError as error:
        if error.limit:
            raise ValidationError({error.field: error.problem}) from error
    return cleaned


# --- Compiled content, rendered per person -------------------------------------------------


class RenderError(ValueError):
    """A template failed for one person (a filter given a value it cannot take, a limit
    reached): the delivery fails with this message; the other people are unaffected."""

    def __init__(self, field: str, problem: str, *, limit: bool = False):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.limit = limit  # a resource limit (the template's fault whoever the person)


@dataclass(frozen=True)
class _Field:
    name: str  # "buttons.0.title"
    keys: tuple  # ("buttons", 0, "title")
    template: liquid.BoundTemplate
    spec: _Text


def _copy_content(content: dict) -> dict:
    """A copy deep enough that a render's values never land in the compiled content."""
    copy = {}
    for key, value in content.items():
        if isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, list):
            value = [dict(item) if isinstance(item, dict) else item for item in value]
        copy[key] = value
    return copy


class CompiledContent:
    """A campaign's content with its templates parsed once: `render(person)` per person.

    `person` is person_context(...) or person_context_from_row(...). Fields without
    Liquid are copied as stored."""

    def __init__(self, channel: str, content: dict, fields: list[_Field]):
        self.channel = channel
        self._content = content
        self._fields = fields

    def render(self, person: Mapping) -> dict:
        """The content for one person; RenderError names the field that failed."""
        rendered = _copy_content(self._content)
        for field in self._fields:
            try:
                value = field.template.render(person=person)
            except Exception as error:  # noqa: BLE001 - filters raise what they raise
                raise RenderError(
                    field.name,
                    _liquid_problem(error),
                    limit=isinstance(error, ResourceLimitError),
                ) from error
            spec = field.spec
            if spec.html:
                value = _RENDER_CLEANER.clean(value)
            elif spec.one_line:
                # A person's data may hold a line break; in a header it would end it.
                value = " ".join(value.split()) if "\n" in value or "\r" in value else value
                value = value.strip()
            if spec.link and not _link_is_allowed(value):
                value = ""  # as the HTML sanitizer drops a javascript: link
            if problem := _too_long(value, spec):
                raise RenderError(field.name, "rendered, " + problem)
            _set(rendered, field.keys, value)
        return rendered


def compile_content(channel: str, content: dict) -> CompiledContent:
    """Parse the templated fields of stored (cleaned) content, once per campaign. A field
    that does not compile is a ValidationError, as in clean_content."""
    _check_channel(channel)
    specs = _RENDER_SPECS[channel]
    fields, errors = [], {}
    for name, keys in _templated_paths(channel, content):
        source = _get(content, keys)
        if not isinstance(source, str) or not _has_liquid(source):
            continue
        spec = specs[name if keys[0] != "buttons" else f"buttons.*.{keys[-1]}"]
        try:
            template = _compile(source, html=spec.html)
        except LiquidError as error:
            errors[name] = _liquid_problem(error)
            continue
        fields.append(_Field(name, keys, template, spec))
    if errors:
        raise ValidationError(errors)
    return CompiledContent(channel, content, fields)


# --- The person a template sees -------------------------------------------------------------

_TEXT_FIELDS = tuple(name for name in BUILTIN_FIELDS if name != "company")  # time_zone too
# The person's own columns a template reads (the dispatcher selects them in SQL, with the
# company's name), and the same as a .values() row: one list for both.
PERSON_COLUMNS = (*_TEXT_FIELDS, "attributes", "created_at")
PERSON_ROW_FIELDS = (*PERSON_COLUMNS, "company__name")


def person_context(person: Person, *, workspace_time_zone: str = "") -> dict:
    """What `{{ person.* }}` reads: the built-in fields ("" when empty), company (its
    name), time_zone (the person's, else `workspace_time_zone`), created_at (a datetime,
    for `| date: ...`) and `attributes`, the custom ones. Reads person.company: select it
    with the person."""
    context = {name: getattr(person, name) or "" for name in _TEXT_FIELDS}
    context["company"] = person.company.name if person.company_id else ""
    context["time_zone"] = person.time_zone or workspace_time_zone
    context["created_at"] = person.created_at
    context["attributes"] = dict(person.attributes or {})
    return context


def person_context_from_row(row: Mapping, *, workspace_time_zone: str = "") -> dict:
    """person_context of a `.values(*PERSON_ROW_FIELDS)` row (no model instance built)."""
    context = {name: row.get(name) or "" for name in _TEXT_FIELDS}
    context["company"] = row.get("company__name") or ""
    context["time_zone"] = row.get("time_zone") or workspace_time_zone
    context["created_at"] = row.get("created_at")
    context["attributes"] = row.get("attributes") or {}
    return context


_EMPTY_PERSON = person_context_from_row({})


# --- The editor's preview -----------------------------------------------------------------


def preview(channel: str, content: dict, person: Person, *, workspace_time_zone: str = "") -> dict:
    """`content` (as the editor holds it, not yet saved) rendered for `person`, cleaned
    as it would be stored; any problem, the person's own included, is a ValidationError
    naming the field, as clean_content's."""
    cleaned = clean_content(channel, content, draft=True)
    compiled = compile_content(channel, cleaned)
    try:
        return compiled.render(person_context(person, workspace_time_zone=workspace_time_zone))
    except RenderError as error:
        raise ValidationError({error.field: error.problem}) from error


def sms_preview(body_rendered: str) -> dict:
    """What a rendered SMS body costs: characters, encoding, segments (channels.sms)."""
    size = sms_size(body_rendered)
    return {
        "characters": len(body_rendered),
        "encoding": size.encoding,
        "units": size.units,
        "segments": size.segments,
        "per_segment": size.per_segment,
    }
