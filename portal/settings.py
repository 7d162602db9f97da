"""The one settings module. Every value comes from the environment through the
strict reader the agent uses too (dtn_protocol.env); docs/configuration.md lists
each variable and a test checks that list against this file."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from dtn_protocol.env import ConfigError, env_bool, env_int, env_list, env_secret, env_str
from portal.lib import crypto

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
    "django.contrib.auth.backends.ModelBackend",
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

# Login throttling: failures are counted per username and per address, so
# one attacker cannot lock a person out from everywhere.
AXES_FAILURE_LIMIT = env_int("DTN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("DTN_LOGIN_COOLOFF_MINUTES", 15, minimum=1) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.accounts.views.locked_out"
AXES_VERBOSE = False
if BEHIND_PROXY:
    # Key lockouts on the client's address, not the proxy's: otherwise anyone's
    # wrong passwords would lock a username out for everyone.
    AXES_IPWARE_PROXY_COUNT = 1
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]

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
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "portal.lib.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
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
# Larger request bodies are refused at the server's edge (portal/asgi.py), before Django spools them.
DTN_MAX_REQUEST_BYTES = env_int("DTN_MAX_REQUEST_BYTES", 16 * 1024 * 1024, minimum=1024)
# Threads (and so database connections) per server process for held claims and the
# reaper; 0 runs those calls on the request's own thread instead.
DTN_DB_THREADS = env_int("DTN_DB_THREADS", 8, minimum=0)

# Notifications (portal/notifications): mail through Django's mail backend, and
# webhooks signed with HMAC; both sent by a worker thread in each server process.
EMAIL_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
}
_email_backend = env_str("DTN_EMAIL_BACKEND", "console")
if _email_backend not in EMAIL_BACKENDS:
    raise ConfigError(f"DTN_EMAIL_BACKEND must be one of {', '.join(EMAIL_BACKENDS)}, not {_email_backend!r}")
EMAIL_BACKEND = EMAIL_BACKENDS[_email_backend]
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
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Axes logs usernames of failed logins at INFO; keep it to warnings.
        "axes": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
    },
}
