"""Settings -> Channels: the provider form of each kind, built from a catalogue of fields
(labels and help a newcomer understands), and the "send a test message" form.

The catalogue describes every kind of provider shared/API.md names for a sending channel;
a page offers only the kinds channels.providers.KINDS_BY_CHANNEL accepts and only the
fields SPECS knows, so it follows what the providers module supports."""

from dataclasses import dataclass

from django import forms
from django.core.exceptions import ValidationError

from channels.providers import KINDS_BY_CHANNEL, KINDS_BY_PLATFORM, SPECS
from channels.services import provider_test_message
from channels.transports.base import OutboundMessage
from channels.transports.esp import ESPS
from config.forms import StyledFormMixin

TEXT, NUMBER, SELECT, PASSWORD, TEXTAREA = "text", "number", "select", "password", "textarea"


@dataclass(frozen=True)
class Field:
    """One input of a provider kind: a setting (stored plain, shown again) or a secret
    (stored sealed, never shown again, never pre-filled)."""

    name: str
    label: str
    help: str = ""
    input: str = TEXT  # text | number | select | password | textarea
    choices: tuple[tuple[str, str], ...] = ()
    secret: bool = False
    optional: bool = False
    group: str = ""  # a key of GROUPS: shown together under the group's title
    placeholder: str = ""
    # (field, value): shown only while that field of the form holds that value
    show_when: tuple[str, str] | tuple[()] = ()
    attrs: tuple[tuple[str, str], ...] = ()  # more HTML attributes (a number's min, max)


@dataclass(frozen=True)
class Kind:
    label: str
    summary: str  # what it is and when to choose it, one or two sentences
    fields: tuple[Field, ...] = ()
    note: str = ""  # what happens once it is saved


# group key -> (title, what the group is for)
GROUPS = {
    "dkim": (
        "DKIM signing (optional)",
        "Herald signs each message itself so receivers can check it came from your domain. "
        "Leave all three empty if your mail provider signs for you (most do); otherwise fill "
        "in all three.",
    ),
    "rate": (
        "Sending rate (optional)",
        "Herald sends no faster than this, counting every worker, so that the provider's own "
        "limit is never hit. Empty: as fast as the provider takes messages.",
    ),
    "advanced": ("Advanced (optional)", "Leave these empty unless your provider told you to."),
}

# The email services, in the order the chooser lists them; it offers those the transport
# supports (channels.transports.esp.ESPS), under these names.
ESP_CHOICES = (
    ("amazon_ses", "Amazon SES"),
    ("mailgun", "Mailgun"),
    ("postmark", "Postmark"),
    ("sendgrid", "SendGrid"),
    ("sparkpost", "SparkPost"),
    ("brevo", "Brevo (formerly Sendinblue)"),
    ("mailjet", "Mailjet"),
    ("resend", "Resend"),
)
STORED_ENCRYPTED = "Stored encrypted; Herald never shows it again."
# Secrets Herald makes itself when an account is saved: no input, shown as set.
MADE_BY_HERALD = {"webhook_secret": "Webhook password (made by Herald)"}

FROM_EMAIL = Field(
    "from_email",
    "From address",
    "The address your messages come from. Your provider must allow sending from it.",
    placeholder="e.g. news@example.com",
)
FROM_NAME = Field(
    "from_name",
    "From name",
    "The name recipients see beside the address. A campaign can set its own.",
    optional=True,
    placeholder="e.g. Acme News",
)

CATALOGUE = {
    "smtp": Kind(
        label="SMTP server",
        summary="Any mail server or relay that speaks SMTP: your own server, or a provider's "
        "SMTP relay (Amazon SES, Mailgun, Postmark, SendGrid and others all offer one).",
        fields=(
            Field("host", "Server", "The host name of the SMTP server.",
                  placeholder="e.g. smtp.example.com"),
            Field("security", "Security",
                  "How the connection is encrypted. Most providers use STARTTLS on port 587; "
                  "choose None only inside a trusted network.", SELECT,
                  (("starttls", "STARTTLS (port 587)"), ("ssl", "SSL/TLS (port 465)"),
                   ("none", "None (port 25)"))),
            Field("port", "Port", "Leave empty for the usual port of the security chosen: 587 "
                  "for STARTTLS, 465 for SSL/TLS, 25 for none.", NUMBER, optional=True,
                  attrs=(("min", "1"), ("max", "65535"))),
            Field("username", "Username", "The login of the SMTP account (often an address or "
                  "an API user). Leave empty if the server needs no login.", optional=True),
            Field("password", "Password", f"The SMTP account's password. {STORED_ENCRYPTED}",
                  PASSWORD, secret=True, optional=True),
            FROM_EMAIL,
            FROM_NAME,
            Field("dkim_domain", "Signing domain", "Usually the domain of the From address.",
                  group="dkim", placeholder="e.g. example.com"),
            Field("dkim_selector", "Selector", "The name of the DNS record that holds the "
                  "public key: <selector>._domainkey.<domain>.", group="dkim",
                  placeholder="e.g. herald"),
            Field("dkim_private_key", "Private key", "The PEM private key, without a password "
                  f"(-----BEGIN PRIVATE KEY----- …). {STORED_ENCRYPTED}", TEXTAREA,
                  secret=True, group="dkim"),
        ),
    ),
    "anymail": Kind(
        label="Email service API",
        summary="Send through an email service's own API (Mailgun, Postmark, SendGrid and "
        "others): faster than SMTP, and the service reports deliveries, bounces and "
        "complaints back to Herald.",
        fields=(
            Field("esp", "Email service", "The service your account is with.", SELECT, ESP_CHOICES),
            Field("api_key", "API key", "The sending API key from the service's dashboard "
                  f"(Postmark calls it the server token). {STORED_ENCRYPTED}", PASSWORD,
                  secret=True),
            Field("secret_key", "Secret key (Mailjet)", "Mailjet only: the secret key shown "
                  f"with the API key. {STORED_ENCRYPTED}", PASSWORD, secret=True,
                  show_when=("esp", "mailjet")),
            Field("webhook_signing_key", "Webhook signing key (Mailgun)", "Mailgun only: "
                  "Sending → Webhooks → HTTP webhook signing key; Herald checks every webhook "
                  f"with it. {STORED_ENCRYPTED}", PASSWORD, secret=True,
                  show_when=("esp", "mailgun")),
            FROM_EMAIL,
            FROM_NAME,
            Field("sender_domain", "Sending domain (Mailgun)", "Mailgun only: the domain you "
                  "verified in Mailgun; empty means the From address's domain.",
                  optional=True, placeholder="e.g. mg.example.com", show_when=("esp", "mailgun")),
            Field("region", "Region (Amazon SES)",
                  "Amazon SES only: the AWS region of your SES account.", optional=True,
                  placeholder="e.g. eu-west-1", show_when=("esp", "amazon_ses")),
            Field("message_stream", "Message stream (Postmark)", "Postmark only: the stream to "
                  "send through, e.g. your broadcast stream for marketing; empty means the "
                  "server's default transactional stream.", optional=True,
                  placeholder="e.g. broadcast", show_when=("esp", "postmark")),
            Field("subaccount", "Subaccount (SparkPost)", "SparkPost only: the subaccount to "
                  "send as, if you use subaccounts.", optional=True,
                  show_when=("esp", "sparkpost")),
            Field("api_url", "API address", "Only for another region or endpoint of the "
                  "service, e.g. Mailgun's EU region https://api.eu.mailgun.net/v3; empty "
                  "means the service's usual address.", optional=True, group="advanced"),
        ),
        note="Once the account is saved, this page shows the webhook URLs to paste into the "
        "service's settings, so that deliveries, bounces and complaints come back to Herald.",
    ),
    "twilio": Kind(
        label="Twilio",
        summary="Send text messages through your Twilio account.",
        fields=(
            Field("account_sid", "Account SID",
                  "On your Twilio Console dashboard: AC followed by 32 letters and digits.",
                  placeholder="AC…"),
            Field("auth_token", "Auth token",
                  f"Beside the Account SID in the Twilio Console. {STORED_ENCRYPTED}", PASSWORD,
                  secret=True),
            Field("from", "From number", "A number of your Twilio account, in international "
                  "form. Give this or a Messaging Service SID.", optional=True,
                  placeholder="e.g. +14155550100"),
            Field("messaging_service_sid", "Messaging Service SID", "MG followed by 32 letters "
                  "and digits: Twilio picks the sender from the service's numbers. Give this "
                  "or a From number.", optional=True, placeholder="MG…"),
            Field("base_url", "API address", "Only for a Twilio-compatible gateway; empty "
                  "means Twilio itself (https://api.twilio.com).", optional=True,
                  group="advanced"),
        ),
        note="Once the account is saved, this page shows the webhook URLs to paste into the "
        "Twilio number's settings, for delivery reports and replies (STOP and START).",
    ),
    "fcm": Kind(
        label="Firebase Cloud Messaging",
        summary="Google's push service for Android apps (and iOS apps that use Firebase).",
        fields=(
            Field("project_id", "Firebase project ID", "Firebase console → Project settings "
                  "→ General; empty means the project of the service account key.",
                  optional=True, placeholder="e.g. acme-app-12345"),
            Field("service_account_json", "Service account key (JSON)", "Firebase console → "
                  "Project settings → Service accounts → Generate new private key: paste the "
                  f"whole downloaded file. {STORED_ENCRYPTED}", TEXTAREA, secret=True),
            Field("base_url", "FCM address", "Only for a proxy or a test server; empty means "
                  "Google's FCM API.", optional=True, group="advanced"),
            Field("token_url", "Token address", "Only for a proxy or a test server; empty means "
                  "the token address in the service account key.", optional=True,
                  group="advanced"),
        ),
    ),
    "apns": Kind(
        label="Apple Push Notification service",
        summary="Apple's push service for iOS apps, with a token signing key (.p8).",
        fields=(
            Field("team_id", "Team ID", "10 characters, in your Apple Developer account → "
                  "Membership details.", placeholder="e.g. ABCDE12345"),
            Field("key_id", "Key ID", "10 characters, beside the key in Certificates, "
                  "Identifiers & Profiles → Keys.", placeholder="e.g. XYZ9876543"),
            Field("topic", "Bundle ID", "Your app's bundle identifier (the APNs topic).",
                  placeholder="e.g. com.example.app"),
            Field("environment", "Environment", "Development builds from Xcode receive only "
                  "from the sandbox; App Store and TestFlight builds from production.", SELECT,
                  (("production", "Production (App Store, TestFlight)"),
                   ("sandbox", "Sandbox (development builds)"))),
            Field("p8_key", "Signing key (.p8)", "The contents of the AuthKey_….p8 file Apple "
                  f"gave you (-----BEGIN PRIVATE KEY----- …). {STORED_ENCRYPTED}", TEXTAREA,
                  secret=True),
            Field("base_url", "APNs address", "Only for a proxy or a test server; empty means "
                  "Apple's server of the environment chosen.", optional=True,
                  group="advanced"),
        ),
    ),
    "webpush": Kind(
        label="Web Push (VAPID)",
        summary="The browsers' standard push for your website, signed with your VAPID key "
        "pair.",
        fields=(
            Field("vapid_subject", "Contact (VAPID subject)", "A mailto: or https: address "
                  "the browsers' push services can reach you at.",
                  placeholder="e.g. mailto:ops@example.com"),
            Field("vapid_private_key", "VAPID private key", "The private half of the key pair "
                  f"(base64url or PEM). {STORED_ENCRYPTED}", TEXTAREA, secret=True),
            Field("vapid_public_key", "VAPID public key", "Your site subscribes browsers with "
                  "it. Empty: Herald works it out from the private key and shows it once "
                  "saved; given, it must be the private key's.", optional=True),
        ),
    ),
    "meta": Kind(
        label="Meta ad account",
        summary="Where the Meta channel's audiences are exported as custom audiences (hashed "
        "identifiers). Meta sends no messages.",
        fields=(
            Field("ad_account_id", "Ad account ID", "The number of the ad account (act_… or "
                  "just the digits), from Meta Business Settings.",
                  placeholder="e.g. act_1234567890"),
            Field("access_token", "Access token", "A system user's token with ads_management. "
                  f"{STORED_ENCRYPTED}", PASSWORD, secret=True),
            Field("base_url", "Graph API address", "Leave empty for graph.facebook.com.",
                  optional=True),
        ),
    ),
    "sandbox": Kind(
        label="Sandbox (records, sends nothing)",
        summary="Every message is recorded in this workspace's Sandbox inbox, where you can "
        "read it as the recipient would: for trying campaigns safely before a real provider "
        "is set up. Nothing to fill in.",
    ),
}  # fmt: skip


# Settings of every kind but the Sandbox (channels.providers checks them for all kinds).
RATE_FIELDS = (
    Field("rate_per_second", "Messages per second", "At most this many a second, e.g. 10 or "
          "0.5.", NUMBER, optional=True, group="rate", attrs=(("min", "0"), ("step", "any"))),
    Field("burst", "Burst", "How many may go at once after a quiet spell; empty means one "
          "second's worth.", NUMBER, optional=True, group="rate", attrs=(("min", "1"),)),
)  # fmt: skip


def kinds_for(channel: str, platform: str = "") -> list[str]:
    """The kinds a provider of `channel` (push: of `platform`) may be, as the providers
    module accepts them now, in its order."""
    kinds = [str(kind) for kind in KINDS_BY_CHANNEL.get(channel, ())]
    if channel == "push":
        kinds = [str(kind) for kind in KINDS_BY_PLATFORM.get(platform, ()) if kind in kinds]
    return [kind for kind in kinds if kind in CATALOGUE]


def fields_for(kind: str) -> tuple[Field, ...]:
    """The catalogue's fields of `kind` that SPECS knows (settings and secrets alike), and
    the sending rate."""
    spec = SPECS.get(kind)
    if spec is None:
        return ()
    known = {False: set(spec.settings), True: set(spec.secrets)}
    fields = tuple(f for f in CATALOGUE[kind].fields if f.name in known[f.secret])
    return fields + (RATE_FIELDS if kind != "sandbox" else ())


def choices_of(field: Field) -> tuple[tuple[str, str], ...]:
    """A select's choices; the email services those the transport supports."""
    if field.name != "esp":
        return field.choices
    named = [(value, label) for value, label in field.choices if value in ESPS]
    return tuple(named) + tuple(
        (value, esp.label) for value, esp in ESPS.items() if value not in dict(named)
    )


def stored_rows(kind: str, settings: dict, secrets_set) -> list[tuple[str, str, bool]]:
    """(label, shown value, is a secret) of a stored provider: its settings in catalogue
    order (a select's choice by its label), then each secret (its value never: "Set")."""
    catalogue = (
        {f.name: f for f in (*CATALOGUE[kind].fields, *RATE_FIELDS)} if kind in CATALOGUE else {}
    )
    rows = []
    for name in [n for n in catalogue if n in settings] + sorted(set(settings) - set(catalogue)):
        field = catalogue.get(name)
        value = settings[name]
        if field is not None and field.choices:
            value = dict(choices_of(field)).get(value, value)
        rows.append((field.label if field else name, str(value), False))
    for name in secrets_set:
        label = catalogue[name].label if name in catalogue else MADE_BY_HERALD.get(name, name)
        rows.append((label, "Set", True))
    return rows


class SecretTextarea(forms.Textarea):
    """A textarea that never renders its value: a secret is never sent back to the browser,
    not even the one just typed into a form that comes back with errors."""

    def format_value(self, value):
        return None


def _form_field(field: Field) -> forms.Field:
    common = {"label": field.label, "required": False, "help_text": field.help}
    # the account's details, never the member's own: no browser autofill or password manager
    attrs = {"autocomplete": "off"} | (
        {"placeholder": field.placeholder} if field.placeholder else {}
    )
    match field.input:
        case "select":
            choices = ((("", "—"),) if field.optional else ()) + choices_of(field)
            return forms.ChoiceField(choices=choices, widget=forms.Select, **common)
        case "number":
            # the number goes to channels.providers as it is: its check names the field
            # with advice ("587 for STARTTLS ..."), better than a bare "Enter a number"
            attrs |= {"inputmode": "decimal"} | dict(field.attrs)
            return forms.CharField(widget=forms.NumberInput(attrs), max_length=20, **common)
        case "password":
            attrs |= {"autocomplete": "new-password", "spellcheck": "false"}
            return forms.CharField(
                widget=forms.PasswordInput(attrs, render_value=False), strip=False, **common
            )
        case "textarea":
            attrs |= {"rows": 4, "spellcheck": "false", "class": "font-monospace"}
            return forms.CharField(widget=SecretTextarea(attrs), **common)
        case _:
            return forms.CharField(widget=forms.TextInput(attrs), max_length=2000, **common)


@dataclass(frozen=True)
class Row:
    """One input on the page: the bound field, its catalogue entry, whether its secret is
    stored (then left empty it keeps its value)."""

    bound: forms.BoundField
    field: Field
    is_set: bool

    @property
    def show_when(self) -> str:
        """herald.js's data-show-when rule ("anymail-esp=mailgun"), or ""."""
        if not self.field.show_when:
            return ""
        name, value = self.field.show_when
        return f"{self.bound.form.add_prefix(name)}={value}"


class ProviderForm(StyledFormMixin, forms.Form):
    """The settings and secrets of one provider kind. The form checks only what its inputs
    are; what makes a valid provider is channels.providers.clean_provider's to say, and
    its answer comes back at the fields (add_provider_errors)."""

    def __init__(self, data=None, *, kind: str, initial=None, secrets_set=()):
        self.kind = kind
        self.catalogue = fields_for(kind)
        self.secrets_set = frozenset(secrets_set)
        self.base_fields = {f.name: _form_field(f) for f in self.catalogue}
        if initial is not None:  # only settings: a secret is never pre-filled
            initial = {f.name: initial[f.name] for f in self.catalogue
                       if not f.secret and f.name in initial}  # fmt: skip
        # Prefixed by the kind: two kinds' inputs never share an id, so htmx, swapping one
        # kind's fields for another's, has no element to "settle" (copy attributes onto)
        super().__init__(data, initial=initial, prefix=kind)

    def provider_values(self) -> tuple[dict, dict]:
        """(settings, secrets) for channels.services.provider_set: empty inputs left out
        (a secret left empty keeps its stored value), numbers as ints."""
        settings, secrets = {}, {}
        for field in self.catalogue:
            value = self.cleaned_data.get(field.name)
            if value in ("", None):
                continue
            if field.secret:
                secrets[field.name] = value
            elif field.input == NUMBER and value.isascii() and value.isdigit():
                settings[field.name] = int(value)
            else:
                settings[field.name] = value
        return settings, secrets

    def add_provider_errors(self, error: ValidationError) -> None:
        """Put provider_set's ValidationError at the fields it names; anything else (the
        kind, a field this page does not show) above the form."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for name, messages in error.message_dict.items():
            if name in self.fields:
                self.add_error(name, messages)
                widget = self.fields[name].widget
                widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()
            else:
                self.add_error(None, messages)

    def sections(self) -> list[tuple[str, str, list[Row]]]:
        """(title, explanation, rows) in catalogue order: ungrouped fields first (title
        ""), then each group."""
        titles = {"": ("", "")} | GROUPS
        rows = {key: [] for key in titles}
        for field in self.catalogue:
            rows[field.group].append(Row(self[field.name], field, field.name in self.secrets_set))
        return [(*titles[key], rows[key]) for key in titles if rows[key]]


ADDRESS_FIELDS = {
    "email": ("Email address", "email", "you@example.com"),
    "sms": ("Phone number", "tel", "+14155550100"),
    "push": ("Device push token", "text", "the token your app registered"),
}
ADDRESS_HELP = {
    "email": "Herald sends one short test email there now.",
    "sms": "In international form. Herald sends one short text there now.",
    "push": "A token your app got from the push service on a test device. Herald sends one "
    "notification there now.",
}


class ProviderTestForm(StyledFormMixin, forms.Form):
    """Where the test message goes: an address of the channel's kind."""

    def __init__(self, data=None, *, channel: str):
        label, input_type, placeholder = ADDRESS_FIELDS[channel]
        widget = forms.TextInput({"placeholder": placeholder, "autocomplete": "off"})
        widget.input_type = input_type
        self.base_fields = {
            "to": forms.CharField(label=label, help_text=ADDRESS_HELP[channel], max_length=4000,
                                  widget=widget)
        }  # fmt: skip
        self.channel = channel
        super().__init__(data, prefix="test")

    def message(self) -> OutboundMessage:
        return provider_test_message(channel=self.channel, address=self.cleaned_data["to"])
