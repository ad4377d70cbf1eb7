"""One settings module, driven by environment variables (see ``.env.example``).

With no variable set the platform runs on the embedded default: SQLite, a file-system Celery broker and
secrets generated into ``var/``. ``ISV_ENV=production`` demands real secrets and turns on the HTTPS
hardening that ``manage.py check --deploy`` expects.
"""

import datetime
from pathlib import Path

import environ
from celery.schedules import crontab

from . import dev_secrets

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

ISV_ENV = env.str("ISV_ENV", default="development")
if ISV_ENV not in {"development", "production"}:
    raise environ.ImproperlyConfigured("ISV_ENV must be 'development' or 'production'")
PRODUCTION = ISV_ENV == "production"

VAR_DIR = env.path("VAR_DIR", default=BASE_DIR / "var")

if PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY")
    FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS")
else:
    _generated = dev_secrets.load_or_create(Path(VAR_DIR) / "dev-secrets.json")
    SECRET_KEY = env.str("SECRET_KEY", default=_generated["SECRET_KEY"])
    FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[_generated["FIELD_ENCRYPTION_KEYS"]])

DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "apps.core.apps.PlatformAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.core",
    "apps.superapps",
    "apps.merchants",
    "apps.accounts",
    "apps.miniprograms",
    "apps.usersessions",
    "apps.payments",
    "apps.webhooks",
    "apps.callbacks",
    "apps.reconciliation",
    "apps.dashboard",
    "apps.demo",
    "apps.sandbox",
]

MIDDLEWARE = [
    "apps.core.middleware.RequestIdMiddleware",
    "apps.core.middleware.MetricsMiddleware",
    "apps.core.middleware.RejectNulBytesMiddleware",
    "apps.core.middleware.TenantScopeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "apps.accounts.middleware.PrincipalMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "isv_platform.urls"
WSGI_APPLICATION = "isv_platform.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
#: What the admin (apps/core/admin.py, TenantScopedAdmin) hands every add, change, deletion and action to.
AUDIT_RECORDER = "apps.accounts.services.audit_record"

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
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{Path(VAR_DIR) / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and immediate transactions let the web server and the Celery worker share the file.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    # Persistent connections: Django's default of reconnecting per request costs 4.5x on order create.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Row-level security on the money and key tables (apps/core/rls.py): every transaction carries its tenant.
    DATABASES["default"]["ENGINE"] = "apps.core.db"
#: The role without BYPASSRLS that requests and tasks act as (SET LOCAL ROLE per transaction), while
#: migrations and management commands keep the login's own rights. Empty: connect as such a role instead.
DATABASE_APP_ROLE = env.str("DATABASE_APP_ROLE", default="isv_platform_app")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and Celery --------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://localhost//")
# A Redis broker that stops answering (a hung process, a partition) must not hold a request that queues a task
# (a notification's acknowledgement) for ever: reads give up after 2 s, above the worker's 1 s BRPOP. Other
# transports ignore these.
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_folder = Path(VAR_DIR) / "celery-broker"
    (_broker_folder / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "data_folder_in": str(_broker_folder),
        "data_folder_out": str(_broker_folder),
        "processed_folder": str(_broker_folder / "processed"),
        "control_folder": str(_broker_folder / "control"),  # else kombu writes ./control wherever it runs
        "polling_interval": 0.1,  # a notification is applied within moments, not after a one-second poll
        "store_processed": False,
    }
# One retry of a failed publish, not three: whatever was not queued, a sweep finds (its row is the record).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# Tasks take ids, never objects: JSON only, both ways.
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is acknowledged once done, and one whose worker process died is delivered again; tasks that keep
# dying are stopped by the attempt counters they keep in the database (inbox rows, webhook deliveries).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Celery's Django fixup closes the database connection after every task unless told to reuse it; a new
# PostgreSQL connection per notification cost more than the notification itself (bench/notify.py).
CELERY_DB_REUSE_MAX = 200
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Work that calls a wallet has a queue of its own, so a slow super app never delays the rest.
CELERY_TASK_ROUTES = {
    "merchants.poll_registrations": {"queue": "wallet"},
    "payments.*": {"queue": "wallet"},
    "webhooks.*": {"queue": "webhooks"},
    "callbacks.*": {"queue": "callbacks"},
    "reconciliation.*": {"queue": "reconciliation"},
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "merchants-poll-registrations": {"task": "merchants.poll_registrations", "schedule": 30.0},
    "merchants-expire-registrations": {"task": "merchants.expire_registrations", "schedule": 3600.0},
    "payments-resolve-due": {"task": "payments.resolve_due", "schedule": 5.0, "options": {"expires": 30}},
    "payments-expire-orders": {"task": "payments.expire_orders", "schedule": 60.0, "options": {"expires": 120}},
    "payments-expire-preauthorizations": {
        "task": "payments.expire_preauthorizations",
        "schedule": 60.0,
        "options": {"expires": 120},
    },
    "callbacks-redrive": {"task": "callbacks.redrive", "schedule": 10.0, "options": {"expires": 60}},
    "usersessions-purge-expired": {"task": "usersessions.purge_expired", "schedule": 3600.0},
    "core-purge-idempotency-records": {"task": "core.purge_idempotency_records", "schedule": 3600.0},
    "superapps-purge-wallet-exchanges": {"task": "superapps.purge_wallet_exchanges", "schedule": 3600.0},
    "webhooks-deliver-due": {"task": "webhooks.deliver_due", "schedule": 10.0, "options": {"expires": 30}},
    "reconciliation-reconcile-yesterday": {
        "task": "reconciliation.reconcile_yesterday",
        "schedule": crontab(hour=2, minute=30),
        "options": {"expires": 3600},
    },
    "sandbox-deliver-due-notifications": {
        "task": "sandbox.deliver_due_notifications",
        "schedule": env.float("SANDBOX_SWEEP_SECONDS", default=5.0),
        "options": {"expires": 30},
    },
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Auth, i18n, static -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(Path(VAR_DIR) / "staticfiles")))  # an image sets its own
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
MEDIA_ROOT = env.path("MEDIA_ROOT", default=Path(VAR_DIR) / "media")
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# --- API ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.usersessions.authentication.UserSessionAuthentication",
        "apps.accounts.authentication.ApiKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.core.api.permissions.HasPrincipal"],
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.api.throttling.TenantRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "tenant": env.str("API_RATE_LIMIT", default="6000/min"),
        "user_session": env.str("API_USER_SESSION_RATE_LIMIT", default="600/min"),
        "failed_auth": env.str("API_FAILED_AUTH_LIMIT", default="30/min"),
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.core.api.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.CursorPagination",
    "DEFAULT_SCHEMA_CLASS": "apps.core.api.schema.PlatformAutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # How many proxies in front append to X-Forwarded-For; 0 trusts only the socket's address, so a client
    # cannot dodge per-address limits by sending its own X-Forwarded-For.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ISV merchant platform API",
    "DESCRIPTION": (
        "Tenant-scoped API for ISVs and merchants. Authenticate with `Authorization: Bearer <api key>`; "
        "an ISV key acts on one of its merchants when the request names it in the `Merchant-Id` header. "
        'Every error is `{"error": {"type", "code", "message", "attr", "request_id"}}`.'
    ),
    "VERSION": "1.0.0",
    "TAGS": [
        {
            "name": "pre-authorizations",
            "description": (
                "Freeze now, capture the final amount later. 1. `POST /preauthorizations` (the mini program "
                "needs the `pre_authorization` feature) returns `trade_pay` for `my.tradePay`. 2. The user "
                "confirms in the super app; the pre-authorization becomes `authorized` (`GET …?refresh=true` asks "
                "at once). 3. `POST /preauthorizations/{id}/capture` with `amount` and `final` — `false` keeps "
                "the rest frozen for more captures, `true` captures and releases the rest (`completed`). Each "
                "capture is a payment of the order. 4. Or `POST /preauthorizations/{id}/release` gives all or "
                "part of what is frozen back (`released` when nothing was captured). After `expires_at` nothing "
                "can be captured (`preauthorizations.expired`); what is frozen goes back to the user."
            ),
        }
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "ApiKeyStatusEnum": ["active", "revoked", "expired"],
        "MiniProgramStatusEnum": "apps.miniprograms.models.MiniProgramStatus",
        "OrderStatusEnum": "apps.payments.models.OrderStatus",
        "PreAuthorizationStatusEnum": "apps.payments.models.PreAuthorizationStatus",
        "PaymentStatusEnum": "apps.payments.models.PaymentStatus",
        "ReleaseStatusEnum": "apps.payments.models.ReleaseStatus",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

# --- Security (on in production; the embedded default serves plain HTTP on loopback) -------------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)

# --- Admin sign-in: lockout after repeated failures, and a second factor ----------------------------
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env.int("ADMIN_LOGIN_LOCKOUT_MINUTES", default=15))
# Per user name and address: a stranger cannot lock a colleague out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
# The client's address: the proxy's X-Forwarded-For only behind one, else the socket's (never a header a
# client could set).
AXES_IPWARE_PROXY_COUNT = 1 if env.bool("BEHIND_TLS_PROXY", default=False) else None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if env.bool("BEHIND_TLS_PROXY", default=False) else ["REMOTE_ADDR"]
)
AXES_VERBOSE = False
# TOTP for operators and ISV admins (anyone else may add one); on by default in production.
ADMIN_SECOND_FACTOR_REQUIRED = env.bool("ADMIN_SECOND_FACTOR_REQUIRED", default=PRODUCTION)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="ISV merchant platform")
X_FRAME_OPTIONS = "DENY"

# --- Logging ------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "apps.core.middleware.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        # One JSON object a line, for a log pipeline: the request id and the tenant the work was scoped to.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(isv_id)s %(merchant_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env.str("LOG_FORMAT", default="json" if PRODUCTION else "plain"),
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # httpx logs every URL at INFO, and notification URLs carry their super app's callback token.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# --- Platform ---------------------------------------------------------------------------------
# API keys record their last use at most this often, so authentication does not write on every request.
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
# How long a mini program user session lasts; the mini program starts a new one with a fresh auth code.
USER_SESSION_TTL_SECONDS = env.int("USER_SESSION_TTL_SECONDS", default=30 * 60)
# How long before a pre-authorization expires its merchant is warned (an event, a log line, a badge in admin).
PREAUTHORIZATION_EXPIRY_WARNING_SECONDS = env.int("PREAUTHORIZATION_EXPIRY_WARNING_SECONDS", default=24 * 3600)
# How long the evidence of each wallet call (request, answer, signature check) is kept for support.
WALLET_EXCHANGE_RETENTION_DAYS = env.int("WALLET_EXCHANGE_RETENTION_DAYS", default=90)
READINESS_TIMEOUT_SECONDS = env.float("READINESS_TIMEOUT_SECONDS", default=2.0)
#: The bearer token a Prometheus scraper sends to GET /metrics; empty: the endpoint is off (404).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
#: A Celery worker serves its own counters (its tasks, the wallet calls they make) at
#: http://WORKER_METRICS_HOST:WORKER_METRICS_PORT/metrics to the same scraper; 0: off.
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
WORKER_METRICS_HOST = env.str("WORKER_METRICS_HOST", default="0.0.0.0")  # noqa: S104 - a pod's own address
#: Unhandled errors are reported to Sentry when set (isv_platform/error_tracking.py).
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    from .error_tracking import start as start_error_tracking

    start_error_tracking(
        dsn=SENTRY_DSN, environment=ISV_ENV, traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
    )
# Where super apps reach this platform (notification URLs are built on it).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}").rstrip("/")

# Merchant webhook URLs may point at private or loopback addresses (local development only).
WEBHOOK_ALLOW_PRIVATE_HOSTS = env.bool("WEBHOOK_ALLOW_PRIVATE_HOSTS", default=not PRODUCTION)
if PRODUCTION and WEBHOOK_ALLOW_PRIVATE_HOSTS:
    raise environ.ImproperlyConfigured("WEBHOOK_ALLOW_PRIVATE_HOSTS is for development only; unset it in production.")
# Webhook retries wait RETRY_DELAYS (about three days in all) times this factor: 1.0 in production.
WEBHOOK_RETRY_SCALE = env.float("WEBHOOK_RETRY_SCALE", default=1.0)

# Scanned business licenses: PDF, PNG or JPEG up to this size.
LICENSE_DOCUMENT_MAX_BYTES = env.int("LICENSE_DOCUMENT_MAX_BYTES", default=10 * 1024 * 1024)

# --- Sandbox wallet (see apps/sandbox/README.md) -------------------------------------------------------
# Off in production unless asked: it is a simulator that accepts any registered test merchant.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=not PRODUCTION)
# Real wallets retry notifications over ~24 h; the sandbox multiplies every delay by this factor
# (`make run` sets 0.01, so a demo's retries come within minutes).
SANDBOX_TIME_SCALE = env.float("SANDBOX_TIME_SCALE", default=1.0)
