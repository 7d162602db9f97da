"""The one settings module. Every value comes from the environment through the
strict reader the agent uses too (dtn_protocol.env); docs/configuration.md lists
each variable and a test checks that list against this file."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from pathlib import Path

import dj_database_url

from dtn_protocol.env import ConfigError, env_bool, env_int, env_list, env_secret, env_str
from portal.lib import crypto, logs

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(env_str("DTN_STATE_DIR", str(BASE_DIR / "var" / "portal"))).resolve()
STATE_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DTN_DEBUG", False)
SECRET_KEY = env_secret("DTN_SECRET_KEY", STATE_DIR)
# Agent and personal API tokens are stored as HMACs under this key, kept apart
# from SECRET_KEY so rotating sessions does not invalidate every agent.
TOKEN_HMAC_KEY = env_secret("DTN_TOKEN_HMAC_KEY", STATE_DIR)
# Fernet keys for secrets the portal must read back (S3 secret keys of grants and
# hand-entered destinations): comma-separated, newest first. See portal/lib/crypto.py.
DTN_ENCRYPTION_KEYS = crypto.parse_keys(
    env_secret("DTN_ENCRYPTION_KEYS", STATE_DIR, generate=crypto.generate_key))

ALLOWED_HOSTS = env_list("DTN_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DTN_CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("DTN_SITE_URL", "http://127.0.0.1:8000")

# Production behind TLS: secure cookies, HSTS, redirect to https.
SECURE = env_bool("DTN_SECURE", False)
SECURE_SSL_REDIRECT = SECURE
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_HSTS_SECONDS = 31536000 if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
BEHIND_PROXY = env_bool("DTN_BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "portal.accounts",
    "portal.containers",
    "portal.transfers",
    "portal.grants",
    "portal.agentapi",
    "portal.netcheck",
    "portal.notifications",
    "portal.metrics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.lib.staticfiles.AsyncWhiteNoiseMiddleware",  # async-capable: see the module
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "builtins": ["portal.lib.templatefilters"],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{STATE_DIR / 'portal.sqlite3'}")
try:
    # Connections are closed after each request: under ASGI every sync view runs
    # in its own thread, where a persistent connection would leak.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
except ValueError as exc:
    raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the server, the agents' reports and the reaper
    # write to one SQLite file without 'database is locked'.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "portal.accounts.guard.GuardedModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "containers"
LOGOUT_REDIRECT_URL = "login"

# Sign-in limits (docs/configuration.md): axes locks a (username, address) pair after a few failures, so one
# attacker cannot lock a person out from everywhere; accounts/guard.py adds a per-username limit that changing
# address cannot dodge. Addresses are REMOTE_ADDR, which the server sets from forwarded headers only when
# DTN_BEHIND_PROXY says a proxy of ours wrote them (gunicorn.conf.py), so axes needs no header parsing.
AXES_FAILURE_LIMIT = env_int("DTN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
DTN_LOGIN_COOLOFF_MINUTES = env_int("DTN_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_COOLOFF_TIME = DTN_LOGIN_COOLOFF_MINUTES / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.accounts.views.locked_out"
AXES_VERBOSE = False
DTN_LOGIN_USERNAME_FAILURE_LIMIT = env_int("DTN_LOGIN_USERNAME_FAILURE_LIMIT", 20, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "portal" / "static"]
STATIC_ROOT = Path(env_str("DTN_STATIC_ROOT", str(STATE_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
                    if not DEBUG else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.accounts.auth.PersonalTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # The API is JSON (the pages post their own forms): a form body cannot say null, numbers or objects as
    # the schema means them.
    "DEFAULT_PARSER_CLASSES": ["portal.lib.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "portal.lib.errors.exception_handler",
    # Every list is paged one way (portal/lib/pagination.py).
    "DEFAULT_PAGINATION_CLASS": "portal.lib.pagination.Pages",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Throttles key on REMOTE_ADDR alone; DRF would otherwise take a client's own X-Forwarded-For.
    "NUM_PROXIES": 0,
}
# Request rates (portal/lib/throttles.py), as N/second, /minute, /hour or /day: signing up and getting a token
# per address; every call of one container's agents together (an agent reports about once a second while it
# sends, and heartbeats or long-polls a few times a minute otherwise).
def _rate(name: str, value: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]*/(second|minute|hour|day)", value):
        raise ConfigError(f"{name} must be a number of requests per second, minute, hour or day (e.g. 30/minute),"
                          f" not {value!r}")
    return value


DTN_THROTTLE_SIGNUP = _rate("DTN_THROTTLE_SIGNUP", env_str("DTN_THROTTLE_SIGNUP", "60/hour"))
DTN_THROTTLE_TOKEN = _rate("DTN_THROTTLE_TOKEN", env_str("DTN_THROTTLE_TOKEN", "30/minute"))
DTN_THROTTLE_AGENT = _rate("DTN_THROTTLE_AGENT", env_str("DTN_THROTTLE_AGENT", "1200/minute"))
# Throttle counts live here: one table in the portal's database, shared by every worker and replica; its
# migration (accounts 0003) makes it wherever migrations run.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "dtn_cache",
        # A count per container and per address: room for every agent of a large site before culling.
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DTN-in-a-Box API",
    "DESCRIPTION": "The people's API (/api/v1/) and the agents' protocol (/api/agent/v1/).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.lib.schema.require_full_patch_bodies",
        "portal.lib.schema.document_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "CommandStateEnum": "portal.transfers.choices.CommandStates",
        "FailureReasonEnum": "portal.transfers.choices.FailureReasons",
        "ContainerRoleEnum": "portal.containers.models.Role",
        "ReportedStateEnum": "portal.agentapi.api.serializers.REPORTED_STATES",
        "TransferStateEnum": "portal.transfers.choices.TransferState",
    },
}

# The agent protocol's clocks, chosen by the server and sent to agents. An idle agent makes one heartbeat
# and one claim (which also brings side-channel tasks) per heartbeat: with 30 s, 2,000 agents ask for about
# 135 requests/s (docs/performance.md); three missed beats (90 s) and a container shows offline.
DTN_HEARTBEAT_SECONDS = env_int("DTN_HEARTBEAT_SECONDS", 30, minimum=1)
DTN_LEASE_SECONDS = env_int("DTN_LEASE_SECONDS", 90, minimum=5)
# Throughput under a tenth of what the network check measured for this long is flagged as a stall.
DTN_STALL_SECONDS = env_int("DTN_STALL_SECONDS", 20, minimum=3)
DTN_CLAIM_HOLD_SECONDS = env_int("DTN_CLAIM_HOLD_SECONDS", 30, minimum=0)
DTN_MAX_ATTEMPTS = env_int("DTN_MAX_ATTEMPTS", 3, minimum=1)
DTN_REAPER_SECONDS = env_int("DTN_REAPER_SECONDS", 10, minimum=1)
# How often a server process looks for queued work for the claims it holds open.
DTN_CLAIM_SWEEP_MS = env_int("DTN_CLAIM_SWEEP_MS", 250, minimum=10)
# The one body limit: larger bodies are refused with a JSON 413 at the server's edge (portal/asgi.py), before
# Django reads them. Django's own limit (2.5 MB) would cut first and answer an HTML 400, refusing valid
# progress reports, so it is off: every deployment is served through that edge (gunicorn.conf.py).
DTN_MAX_REQUEST_BYTES = env_int("DTN_MAX_REQUEST_BYTES", 16 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = None
# Threads (and so database connections) per server process for held claims and the
# reaper; 0 runs those calls on the request's own thread instead.
DTN_DB_THREADS = env_int("DTN_DB_THREADS", 8, minimum=0)


def _networks(name: str, items: list[str]) -> list:
    try:
        return [ipaddress.ip_network(item, strict=False) for item in items]
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


# GET /metrics (portal/metrics): served to these networks without a token, and to anyone with the token.
DTN_METRICS_ALLOW_NETWORKS = _networks("DTN_METRICS_ALLOW_IPS", env_list("DTN_METRICS_ALLOW_IPS", ["127.0.0.1", "::1"]))
DTN_METRICS_TOKEN = env_secret("DTN_METRICS_TOKEN")

# Notifications (portal/notifications): mail through Django's mail backend, and
# webhooks signed with HMAC; both sent by a worker thread in each server process.
EMAIL_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
}
DTN_LOG_FORMAT = env_str("DTN_LOG_FORMAT", "plain")
if DTN_LOG_FORMAT not in logs.FORMATS:
    raise ConfigError(f"DTN_LOG_FORMAT must be one of {', '.join(logs.FORMATS)}, not {DTN_LOG_FORMAT!r}")
_email_backend = env_str("DTN_EMAIL_BACKEND", "console")
if _email_backend not in EMAIL_BACKENDS:
    raise ConfigError(f"DTN_EMAIL_BACKEND must be one of {', '.join(EMAIL_BACKENDS)}, not {_email_backend!r}")
EMAIL_BACKEND = EMAIL_BACKENDS[_email_backend]
if _email_backend == "console" and DTN_LOG_FORMAT == "json":
    # A mail printed as it is would be the one part of a JSON log that is not JSON.
    EMAIL_BACKEND = "portal.lib.logs.LoggedMailBackend"
EMAIL_FILE_PATH = env_str("DTN_EMAIL_FILE_PATH", str(STATE_DIR / "mail"))
EMAIL_HOST = env_str("DTN_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DTN_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("DTN_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_secret("DTN_EMAIL_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("DTN_EMAIL_STARTTLS", False)
EMAIL_USE_SSL = env_bool("DTN_EMAIL_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ConfigError("DTN_EMAIL_STARTTLS and DTN_EMAIL_SSL cannot both be true")
EMAIL_TIMEOUT = env_int("DTN_EMAIL_TIMEOUT_SECONDS", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DTN_EMAIL_FROM", "DTN-in-a-Box <dtn@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
DTN_WEBHOOK_TIMEOUT_SECONDS = env_int("DTN_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
# Webhooks to loopback, private and link-local addresses are refused unless allowed:
# otherwise any account could make the portal call services on its own network.
DTN_WEBHOOK_ALLOW_PRIVATE = env_bool("DTN_WEBHOOK_ALLOW_PRIVATE", False)
# A receiver's address (dtn_protocol.endpoints): plain http:// and loopback, link-local or this
# portal's own address are refused unless allowed (the box and one-host tests allow local ones).
DTN_ALLOW_PLAIN_ENDPOINTS = env_bool("DTN_ALLOW_PLAIN_ENDPOINTS", False)
DTN_ALLOW_LOCAL_ENDPOINTS = env_bool("DTN_ALLOW_LOCAL_ENDPOINTS", False)
DTN_NOTIFY_MAX_ATTEMPTS = env_int("DTN_NOTIFY_MAX_ATTEMPTS", 5, minimum=1)
DTN_NOTIFY_RETRY_SECONDS = env_int("DTN_NOTIFY_RETRY_SECONDS", 30, minimum=1)
DTN_NOTIFY_POLL_SECONDS = env_int("DTN_NOTIFY_POLL_SECONDS", 5, minimum=1)

LOG_LEVEL = env_str("DTN_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"dtn": logs.formatter(DTN_LOG_FORMAT)},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "dtn"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Axes logs usernames of failed logins at INFO; keep it to warnings.
        "axes": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
    },
}
if DTN_LOG_FORMAT == "json":
    # Python's warnings as log lines, so a JSON log has no line of another shape.
    logging.captureWarnings(True)
