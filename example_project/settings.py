"""Settings for the example project, read from the environment as on Heroku.

Locally, with nothing set, it runs over plain HTTP on 127.0.0.1 with SQLite in db.sqlite3.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# Heroku sets DYNO on every dyno; Heroku CI sets CI, and runs over plain HTTP.
IS_HEROKU_APP = "DYNO" in os.environ and "CI" not in os.environ

# Production mode: DEBUG off, a required secret key, HTTPS only behind the platform's proxy (at
# the end of this file). On Heroku by default; elsewhere DJANGO_PRODUCTION=1, as the files in
# docs/platforms set it.
PRODUCTION = env_flag("DJANGO_PRODUCTION", default=IS_HEROKU_APP)

# Heroku gets a real key from app.json's `secret` generator. In production a process without one
# fails every request that signs something (ImproperlyConfigured) rather than sign with a public
# key. Locally a fixed development key lets every gunicorn worker read the others' sessions.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (
    "" if PRODUCTION else "django-insecure-local-development-key-do-not-use-in-production"
)

DEBUG = env_flag("DEBUG", default=not PRODUCTION)

# DJANGO_ALLOWED_HOSTS: the host names the site answers to, comma-separated. Unset, any host in
# production, where the router (Heroku's) checks the Host header before the request reaches the
# process; locally the loopback names.
ALLOWED_HOSTS = [
    host.strip() for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if host.strip()
] or (["*"] if PRODUCTION else [".localhost", "127.0.0.1", "[::1]", "0.0.0.0"])

# The code marker: bump it in the commit whose fix needs everyone to sign in again.
FORCE_LOGOUT_VERSION = 1

# Off: a release whose logout fails does not go out. `heroku config:set
# FORCE_LOGOUT_FAIL_OPEN=1` lets releases out anyway during an outage of the session store.
FORCE_LOGOUT_FAIL_OPEN = env_flag("FORCE_LOGOUT_FAIL_OPEN", default=False)

# Shown once, on the next page, to a user whose session a logout ended (LogoutMessageMiddleware).
FORCE_LOGOUT_MESSAGE = "You were signed out because the site was updated. Please sign in again."

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles, so that runserver serves static files as production does.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "release",
    "example_project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "release.middleware.LogoutMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

WSGI_APPLICATION = "example_project.wsgi.application"

# DATABASE_URL comes from Heroku Postgres; without it, SQLite next to manage.py.
database_url = os.environ.get("DATABASE_URL", "")
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Keep connections open between requests, and check them before reuse.
        conn_max_age=600,
        conn_health_checks=True,
        # DATABASE_SSL_REQUIRE: TLS to PostgreSQL (sslmode=require). On by default on Heroku,
        # whose Postgres requires it, and nowhere else. An sslmode that DATABASE_URL gives itself
        # (verify-full, say) is kept as it is.
        ssl_require=env_flag("DATABASE_SSL_REQUIRE", default=IS_HEROKU_APP)
        and database_url.startswith("postgres")
        and "sslmode" not in parse_qs(urlsplit(database_url).query),
    ),
}

# REDIS_URL comes from Heroku Key-Value Store; without it, each process caches in memory.
if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            # Heroku Key-Value Store's TLS certificate is self-signed.
            "OPTIONS": {"ssl_cert_reqs": None}
            if os.environ["REDIS_URL"].startswith("rediss://")
            else {},
        }
    }

# The guard, which refuses every session from before a logout, around the engine that keeps the
# sessions: a dotted path, as SESSION_ENGINE takes, to run the example with each engine.
SESSION_ENGINE = "release.sessions"
RELEASE_SESSION_ENGINE = (
    os.environ.get("DJANGO_SESSION_ENGINE") or "django.contrib.sessions.backends.db"
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_URL = "static/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

if PRODUCTION:
    # The platform's router (Heroku's) terminates TLS and says so in X-Forwarded-Proto. Locally
    # the site runs over plain HTTP, where secure cookies would never be sent back.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Heroku collects what processes print, at INFO as Heroku's own Python sample app does. The release
# commands print each of their events once on the console whatever this says; the `release`
# logger's records of them reach the other handlers a project adds (a file, a log service).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "{levelname} {name}: {message}", "style": "{"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
