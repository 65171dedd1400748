"""Which proxies to believe: the public home of :class:`ProxyTrust` and the request facts.

::

    from renderkit.proxy import ProxyTrust

    trust = ProxyTrust.render()              # Render: Cloudflare + Render's proxy
    app.add_middleware(HTTPSRedirectMiddleware, trust=trust)
    limiter_key = client_ip_key(trust=trust)  # renderkit.ratelimit

Every HTTP concern (HTTPS redirect, security headers, rate limiting, metrics, access logs)
takes a ``trust`` built here. ``X-Forwarded-For`` / ``X-Forwarded-Proto`` count only from the
proxies it names; the client address is the entry ``hops`` from the right.
"""

from __future__ import annotations

from renderkit._http import PRIVATE_NETWORKS, ProxyTrust, client_ip, effective_scheme

__all__ = ["PRIVATE_NETWORKS", "ProxyTrust", "client_ip", "effective_scheme"]
