"""Gunicorn settings for the example project's `web` dyno (see the Procfile)."""

from __future__ import annotations

import os

# Heroku routes to $PORT; locally the default keeps to the loopback interface.
bind = ["[::]:" + os.environ["PORT"]] if "PORT" in os.environ else ["127.0.0.1:8000"]

# The Python buildpack sets WEB_CONCURRENCY from the dyno's memory.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))

# Heroku's router gives up on a request after 30 s: end a stuck worker before that, so the error
# is ours, logged, and the worker is replaced.
timeout = 20

# Heroku's router keeps connections open for up to 90 s; staying open longer avoids needless
# reconnects.
keepalive = 90

# Heroku sends SIGTERM and then SIGKILL after 30 s when it stops a dyno: finish requests well
# before that.
graceful_timeout = 20

# Log to stdout, which Heroku collects.
accesslog = "-"
errorlog = "-"

# Heroku's router is the proxy; trust its X-Forwarded-* headers (the buildpack sets this too).
forwarded_allow_ips = "*"
