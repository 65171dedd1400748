"""gunicorn settings for examples/flask_app.py: ``gunicorn -c examples/gunicorn.conf.py
examples.flask_app:app``.

Render sends SIGTERM and kills the instance ``maxShutdownDelaySeconds`` later (30 s by
default): gunicorn drains for 25 s, and renderkit's hooks flip readiness to 503 and close the
cache and rate limiter inside that window.
"""

import os

from renderkit.logging import configure_logging
from renderkit.shutdown import gunicorn_hooks

configure_logging()  # JSON lines in production, readable console locally; workers inherit it

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 4
graceful_timeout = 25
timeout = 30
keepalive = 75

# Each worker imports the app, and so its own coordinator: name it by "module:attribute".
globals().update(gunicorn_hooks("examples.flask_app:coordinator"))
