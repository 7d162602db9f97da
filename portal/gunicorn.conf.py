"""How the portal is served, everywhere: `gunicorn -c portal/gunicorn.conf.py`.

Uvicorn workers run Django as ASGI, so a claim held open for 25 s is a parked
coroutine rather than a busy worker: one process holds thousands of agents.
The box, the compose file and the tests all start the portal this way."""

import os

wsgi_app = "portal.asgi:application"
worker_class = "uvicorn_worker.UvicornWorker"
bind = os.environ.get("DTN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("DTN_WEB_WORKERS", "2"))
# Held claims last DTN_CLAIM_HOLD_SECONDS; the worker timeout is about a stuck
# event loop, not a slow request, so it can stay short.
timeout = 60
graceful_timeout = 10
keepalive = 30
accesslog = "-" if os.environ.get("DTN_ACCESS_LOG", "false") == "true" else None
errorlog = "-"
# One machine may run several portals (the box, tests); a shared control socket
# in $HOME would collide, and nothing here uses it.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("DTN_FORWARDED_ALLOW_IPS", "127.0.0.1")
