"""The HTTP edge policies on a Flask app through ``renderkit.flask.RenderKit``.

Run: ``flask --app examples.edge_flask run`` (or ``gunicorn --threads 4 examples.edge_flask:app``)
then ``curl -i localhost:5000/users/3`` and ``curl localhost:5000/metrics``.
"""

from __future__ import annotations

import logging

from flask import Flask, g, render_template_string

from renderkit.correlation import CorrelationIdFilter
from renderkit.flask import RenderKit

handler = logging.StreamHandler()
handler.addFilter(CorrelationIdFilter())
handler.setFormatter(logging.Formatter("%(levelname)s [%(correlation_id)s] %(name)s: %(message)s"))
logging.basicConfig(level=logging.INFO, handlers=[handler])

app = Flask(__name__)
# HTTPS redirect only in production (or FORCE_HTTPS=1); headers, ids and metrics always.
renderkit = RenderKit(app, metrics_path="/metrics")

PAGE = """<!doctype html><title>user {{ uid }}</title>
<p id=msg>script blocked</p>
<script nonce="{{ csp_nonce }}">document.getElementById('msg').textContent = 'nonce works';</script>
<p>request {{ request_id }}</p>"""


@app.get("/users/<int:uid>")
def user(uid: int) -> str:
    app.logger.info("rendering user %s (request %s)", uid, g.request_id)
    return render_template_string(PAGE, uid=uid)


@app.get("/health")
def health() -> str:
    return "ok"
