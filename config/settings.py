"""Herald settings: every value comes from the environment, read here and only here.

Herald needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL). `make run` and `make test`
set both, starting embedded servers when nothing is configured (config/launch.py); a
manage.py command run beside `make run` without them uses the servers that run serves.
"""

import base64
import binascii
import hashlib
from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config.embedded import running_info
from config.env import (
    env_bool,
    env_database,
    env_int,
    env_list,
    env_rate,
    env_redis_url,
    env_str,
    env_time_zone,
    trusted_proxy_settings,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("HERALD_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))'), or set DEBUG=1 "
            "for a development key."
        )
    SECRET_KEY = "django-insecure-herald-development-key-do-not-use-in-production-0123456789"
elif len(SECRET_KEY) < 50 and not DEBUG:
    raise ImproperlyConfigured("SECRET_KEY is too short: use at least 50 random characters.")
# Former SECRET_KEYs, comma-separated: sessions and password-reset links signed with them
# stay valid after a rotation (and, by default, API keys hashed with them; see below).
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS is empty: set it to the comma-separated host names Herald answers on."
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",
    "django_htmx",
    "axes",
    "import_export",
    "ninja",
    "corsheaders",
    "accounts",
    "people",
    "audiences",
    "segments",
    "channels",
    "campaigns",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Every response carries the Content-Security-Policy (SECURE_CSP), the 400 page too.
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Before anything reads the path or query: NUL / lone surrogates answer 400 (API: 422).
    "accounts.middleware.BadCharacterMiddleware",
    # CORS for the public banner API only, per workspace (campaigns.banners.cors_allowed)
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.middleware.WorkspaceMiddleware",
    # Axes must come last: it turns a lockout signal into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "accounts.context_processors.workspace",
            ],
        },
    },
]

# --- Data -------------------------------------------------------------------------------
_running = running_info(VAR_DIR) or {}  # the embedded servers of a `make run` using VAR_DIR
for _variable in ("DATABASE_URL", "REDIS_URL"):
    if not env_str(_variable) and not _running.get(_variable.lower()):
        raise ImproperlyConfigured(
            f"{_variable} is not set. Start Herald with `make run` (it starts an embedded "
            f"server when none is configured), or set {_variable} "
            + (
                "(postgres://user@host:5432/herald)."
                if _variable == "DATABASE_URL"
                else "(redis://host:6379/0)."
            )
        )
DATABASES = {"default": env_database("DATABASE_URL", _running.get("database_url"))}
if not env_bool("PG_JIT", False):
    # PostgreSQL's JIT spends 0.05-0.5 s compiling any plan its cost model finds expensive,
    # which segment counts and People page filters often are; answers are faster without.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
if env_str("TEST_DATABASE_NAME"):  # lets two test runs share one server
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

REDIS_URL = env_redis_url("REDIS_URL") or _running["redis_url"]
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "herald",
    }
}

# --- Auth -------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24 * 3  # invitations use the same link

# Sign-in lockout (django-axes), two limits within the cool-off time: failures on one
# account from one client address, and failures on one account from anywhere (higher, so
# that many addresses cannot brute-force one account, while one person's typos do not lock
# the account for everyone). Axes has one limit for all lockout parameters; the callable
# gives each parameter its own (accounts.selectors.login_failure_limit).
LOGIN_FAILURE_LIMIT_PER_ADDRESS = env_int("AXES_FAILURE_LIMIT", 5)
LOGIN_FAILURE_LIMIT_PER_ACCOUNT = env_int("AXES_ACCOUNT_FAILURE_LIMIT", 20)
if LOGIN_FAILURE_LIMIT_PER_ADDRESS < 1:
    raise ImproperlyConfigured("AXES_FAILURE_LIMIT must be at least 1.")
if LOGIN_FAILURE_LIMIT_PER_ACCOUNT <= LOGIN_FAILURE_LIMIT_PER_ADDRESS:
    raise ImproperlyConfigured(
        "AXES_ACCOUNT_FAILURE_LIMIT must be larger than AXES_FAILURE_LIMIT "
        f"({LOGIN_FAILURE_LIMIT_PER_ADDRESS}): it counts the failures from every address."
    )
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username"]
AXES_FAILURE_LIMIT = "accounts.selectors.login_failure_limit"
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_RESET_ON_SUCCESS = True
# The sign-in form posts the email in the field named "username" (Django's login form).
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
AXES_VERBOSE = False

# The client address (sign-in lockout and the API's failed-key limit) is read through this
# many trusted reverse proxies in front of Herald (docker-compose expects one, the TLS
# proxy). 0: REMOTE_ADDR, and X-Forwarded-For is ignored. Set it only when every request
# arrives through exactly those proxies: a client reaching Herald directly could otherwise
# choose its address.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
_client_ip = trusted_proxy_settings(TRUSTED_PROXY_COUNT)
AXES_IPWARE_PROXY_COUNT = _client_ip["AXES_IPWARE_PROXY_COUNT"]
AXES_IPWARE_META_PRECEDENCE_ORDER = _client_ip["AXES_IPWARE_META_PRECEDENCE_ORDER"]
IPWARE_STRICT = _client_ip["IPWARE_STRICT"]

# --- Security (production defaults whenever DEBUG is off) ------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = 0 if DEBUG else env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Content-Security-Policy -------------------------------------------------------------
# Scripts, styles, fonts and images come from Herald's own static files only. Templates
# hold no inline script, event handler or style attribute (tests/test_csp.py scans them):
# behaviour lives in static/js (data attributes, e.g. data-confirm), styling in
# static/css/herald.css. The one inline style is the <style> of templates/400.html and
# 500.html, which render without a request (so without a nonce): allowed by its hash, which
# tests/test_csp.py recomputes. CSP.NONCE is sent only on a response that used
# {{ csp_nonce }}: Django's admin and CSRF failure page mark their inline code with it.
from django.utils.csp import CSP  # noqa: E402  (imported here to keep this block whole)

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE, "'sha256-RSoNj9xcw2mQSbV/KQsXV2ewFxkhEvP/Q25l3ZIZ1Gc='"],
    "img-src": [CSP.SELF, "data:"],  # data: for Bootstrap's inline SVG icons (selects, checks)
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Locale -----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files (vendored; WhiteNoise serves them) ------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_MANIFEST = env_bool("STATIC_MANIFEST", not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
MEDIA_ROOT = VAR_DIR / "media"

# --- Audience CSV import ----------------------------------------------------------------
# The largest file an audience import takes (UI and API; the API answers 413 above it).
AUDIENCE_IMPORT_MAX_MB = env_int("AUDIENCE_IMPORT_MAX_MB", 250)
if AUDIENCE_IMPORT_MAX_MB < 1:
    raise ImproperlyConfigured("AUDIENCE_IMPORT_MAX_MB must be at least 1 (megabytes).")
AUDIENCE_IMPORT_MAX_BYTES = AUDIENCE_IMPORT_MAX_MB * 1024 * 1024
# Days the upload and the error report of a finished import are kept (then deleted daily
# by beat; the job's page says so).
AUDIENCE_IMPORT_RETENTION_DAYS = env_int("AUDIENCE_IMPORT_RETENTION_DAYS", 14)
if AUDIENCE_IMPORT_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("AUDIENCE_IMPORT_RETENTION_DAYS must be at least 1 (days).")

# Largest CSV a contact import accepts (uploads and error reports live under MEDIA_ROOT).
CONTACT_IMPORT_MAX_BYTES = env_int("CONTACT_IMPORT_MAX_MB", 512) * 1024 * 1024
if CONTACT_IMPORT_MAX_BYTES <= 0:
    raise ImproperlyConfigured("CONTACT_IMPORT_MAX_MB must be a positive number of megabytes.")

# --- Email (SMTP) -----------------------------------------------------------------------
# Read from EMAIL_* variables; with no EMAIL_HOST in DEBUG, mail is printed to the console.
_email_host = env_str("EMAIL_HOST", "")
_email_use_tls = env_bool("EMAIL_USE_TLS", False)
_email_use_ssl = env_bool("EMAIL_USE_SSL", False)
if _email_use_tls and _email_use_ssl:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are both on: choose one.")
_email_backend = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if _email_host or not DEBUG
    else "django.core.mail.backends.console.EmailBackend",
)
MAILERS = {
    "default": {
        "BACKEND": _email_backend,
        "OPTIONS": {
            "host": _email_host or "localhost",
            "port": env_int("EMAIL_PORT", 25),
            "username": env_str("EMAIL_HOST_USER", ""),
            "password": env_str("EMAIL_HOST_PASSWORD", ""),
            "use_tls": _email_use_tls,
            "use_ssl": _email_use_ssl,
            "timeout": env_int("EMAIL_TIMEOUT", 20),
        }
        if _email_backend.endswith("smtp.EmailBackend")
        else {},
    }
}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Herald <herald@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60 * 60}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "segments.tasks.*": {"queue": "segments"},
    "people.tasks.*import*": {"queue": "imports"},
    "audiences.tasks.*import*": {"queue": "imports"},
    "campaigns.tasks.*": {"queue": "dispatch"},
    # short and frequent: not behind a long send on `dispatch`
    "campaigns.tracking_tasks.*": {"queue": "default"},
    # a channel's syncs and exports are long jobs, like imports
    "channels.tasks.channel_sync*": {"queue": "imports"},
    "channels.tasks.meta_export*": {"queue": "imports"},
    "channels.tasks.*": {"queue": "dispatch"},
}
# Reliability: a task is acknowledged only when it has finished, and a task whose worker
# died is put back on the queue rather than lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 60 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 55 * 60
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE = {
    # real-time segments: the outbox no task took, then what time changes (segments.realtime)
    "real-time-segments-clock": {
        "task": "segments.tasks.realtime_clock_task",
        "schedule": 30.0,
    },
    # opens and clicks queued in Redis by /t/o and /t/c, applied in batches
    "flush-tracking-hits": {
        "task": "campaigns.tracking_tasks.tracking_flush_task",
        "schedule": 5.0,
    },
    # flows: who entered a flow's segment, then every due run (waits end, next steps)
    "advance-flows": {
        "task": "campaigns.flows.tasks.flows_advance_task",
        "schedule": 15.0,
    },
    # banner impressions and clicks queued in Redis by /public/v1/banners/events
    "flush-banner-events": {
        "task": "campaigns.tasks.banner_events_flush_task",
        "schedule": 5.0,
    },
    "dispatch-due-campaigns": {
        "task": "campaigns.tasks.campaigns_due_task",
        "schedule": 60.0,
    },
    "sync-due-channel-segments": {
        "task": "channels.tasks.channel_syncs_due_task",
        "schedule": 60.0,
    },
    "refresh-due-query-segments": {
        "task": "segments.tasks.refresh_due_segments_task",
        "schedule": 60.0,
    },
    "clear-expired-sessions": {
        "task": "accounts.tasks.clear_expired_sessions_task",
        "schedule": crontab(minute=17, hour=3),
    },
    "clear-old-login-attempts": {
        "task": "accounts.tasks.clear_old_login_attempts_task",
        "schedule": crontab(minute=27, hour=3),
    },
    "expire-tracked-message-ids": {
        "task": "people.tasks.tracked_messages_expire_task",
        "schedule": crontab(minute=47, hour=3),
    },
    "expire-audience-import-files": {
        "task": "audiences.tasks.audience_import_files_expire_task",
        "schedule": crontab(minute=37, hour=3),
    },
}

# The Segment-compatible API (people.tracking) dedupes on messageId for this many days.
TRACKED_MESSAGE_DAYS = 30

# --- HTTP API ---------------------------------------------------------------------------
NINJA_PAGINATION_MAX_LIMIT = 1000
API_KEY_PREFIX = "hk_"
# Requests per API key, and failed authentications (unknown, revoked or malformed keys)
# per client address: over either, the API answers 429 with Retry-After. Counted in Redis;
# with Redis down, requests are served (and a warning is logged).
API_RATE_LIMIT = env_rate("API_RATE_LIMIT", "3000/m")
API_AUTH_FAILURE_LIMIT = env_rate("API_AUTH_FAILURE_LIMIT", "30/m")
# The HMAC keys API keys are stored under, comma-separated: the first hashes new keys,
# every one is tried on lookup (a key found under another is re-hashed with the first), so
# a rotation is "NEW,OLD" until the old keys have been used or are given up. Default:
# SECRET_KEY and SECRET_KEY_FALLBACKS, what keys made before this setting were hashed with.
API_KEY_HASH_KEYS = env_list("API_KEY_HASH_KEYS", [])
if API_KEY_HASH_KEYS:
    if any(len(key) < 32 for key in API_KEY_HASH_KEYS):
        raise ImproperlyConfigured(
            "API_KEY_HASH_KEYS: every key needs at least 32 random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(48))')."
        )
    if len(set(API_KEY_HASH_KEYS)) != len(API_KEY_HASH_KEYS):
        raise ImproperlyConfigured("API_KEY_HASH_KEYS lists the same key twice.")
else:
    API_KEY_HASH_KEYS = [SECRET_KEY, *SECRET_KEY_FALLBACKS]

# Provider secrets (SMTP passwords, Twilio auth tokens, push keys) are stored encrypted
# with these Fernet keys, comma-separated: the first encrypts, every one decrypts, so a
# rotation is "NEW,OLD" and then `manage.py rotate_provider_secrets`. Required with DEBUG
# off; in development a key is derived from SECRET_KEY.
# Provider hosts a workspace configures (SMTP servers, API base URLs) must resolve to public
# addresses (SSRF), checked at connect time; tests and on-premises gateways allow private.
ALLOW_PRIVATE_PROVIDER_HOSTS = env_bool("ALLOW_PRIVATE_PROVIDER_HOSTS", False)
# Where providers reach Herald's webhooks (https://herald.example.com): Twilio's status
# callbacks are asked for only when it is set (tracking links of campaigns use it too).
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "").rstrip("/")
# The port `make run` serves the demo on (config/launch.py): without PUBLIC_BASE_URL, links
# in the demo's messages (unsubscribe) point at http://127.0.0.1:HERALD_PORT.
HERALD_PORT = env_int("HERALD_PORT", 8000)
# A mailbox that takes unsubscribe requests by email (unsubscribe@herald.example.com):
# when set, every campaign email's List-Unsubscribe also offers mailto: it, the message's
# token in the subject. Empty: the one-click HTTPS link only.
UNSUBSCRIBE_MAILTO = env_str("UNSUBSCRIBE_MAILTO", "")

PROVIDER_SECRET_KEYS = env_list("PROVIDER_SECRET_KEYS", [])
if PROVIDER_SECRET_KEYS:
    for _key in PROVIDER_SECRET_KEYS:
        try:
            _valid = len(base64.urlsafe_b64decode(_key.encode())) == 32
        except (binascii.Error, ValueError):
            _valid = False
        if not _valid:
            raise ImproperlyConfigured(
                "PROVIDER_SECRET_KEYS: each key must be a Fernet key, 32 bytes in url-safe "
                "base64 (python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')."
            )
elif not DEBUG:
    raise ImproperlyConfigured(
        "PROVIDER_SECRET_KEYS is not set: provider secrets are stored encrypted with it. "
        "Set it to a Fernet key (python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'), or DEBUG=1 for a development key."
    )
else:
    PROVIDER_SECRET_KEYS = [
        base64.urlsafe_b64encode(
            hashlib.sha256(f"herald-provider-secrets:{SECRET_KEY}".encode()).digest()
        ).decode()
    ]

# --- Logging ----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        # one INFO line per provider request (an SMS, a push) naming the account in its URL
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
FORM_RENDERER = "config.forms.HeraldFormRenderer"

# --- Admin import/export ----------------------------------------------------------------
# An admin import either applies every row or none (a refused row rolls the file back).
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = True
# Importing needs the model's change permission (scoped admins also ask for add), exporting
# its view permission; unset, any staff member could import and export every model.
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "change"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
# Not IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT (it only strips a leading "="): every admin
# exports through accounts.admin_scoping.SafeCSV, which defuses formula cells.


# The public banner API (campaigns.banners): CORS only under /public/v1/, for the origins
# the key's workspace allows (its check_request_enabled signal); no cookies cross.
CORS_URLS_REGEX = r"^/public/v1/"
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_METHODS = ("GET", "POST", "OPTIONS")
CORS_ALLOW_HEADERS = ("content-type", "x-herald-key")
CORS_PREFLIGHT_MAX_AGE = 600
