"""How the portal is served, everywhere: `gunicorn -c portal/gunicorn.conf.py`.

Uvicorn workers run Django as ASGI, so a claim held open for 25 s is a parked
coroutine rather than a busy worker: one process holds thousands of agents.
The box, the compose file and the tests all start the portal this way."""

import os

from dtn_protocol.env import env_bool, env_int, env_str
from portal.lib import logs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

wsgi_app = "portal.asgi:application"
worker_class = "uvicorn_worker.UvicornWorker"
bind = env_str("DTN_BIND", "127.0.0.1:8000")
workers = env_int("DTN_WEB_WORKERS", 2, minimum=1)
# TLS straight from the server when given a certificate (the portal compose file does).
certfile = env_str("DTN_TLS_CERT")
keyfile = env_str("DTN_TLS_KEY")
# Held claims last DTN_CLAIM_HOLD_SECONDS; the worker timeout is about a stuck
# event loop, not a slow request, so it can stay short.
timeout = 60
graceful_timeout = 10
keepalive = 30
accesslog = "-" if env_bool("DTN_ACCESS_LOG", False) else None
errorlog = "-"
# JSON logs: the server's own lines (and uvicorn's) as JSON too; plain ones stay gunicorn's own. settings.py
# refuses a format it does not know, before any worker starts.
if env_str("DTN_LOG_FORMAT", "plain") == "json":
    logconfig_dict = logs.gunicorn_config(accesslog is not None)
# One machine may run several portals (the box, tests); a shared control socket
# in $HOME would collide, and nothing here uses it.
control_socket_disable = True
# Forwarded headers (X-Forwarded-For, -Proto) replace the client's address only when DTN_BEHIND_PROXY says a
# proxy of ours writes them, and only from the addresses named here. uvicorn_worker hands this list to uvicorn's
# proxy-header middleware, which otherwise trusts 127.0.0.1: anyone on this host, or any request a local
# process relays, could then choose the address that sign-in lockouts count against (issue 21).
forwarded_allow_ips = env_str("DTN_FORWARDED_ALLOW_IPS", "127.0.0.1") if env_bool("DTN_BEHIND_PROXY", False) else ""


def on_starting(server):
    """Collect static files before any worker serves a page: the hashed names
    the pages link to exist only after collectstatic, and a deployer who forgot
    it would get a 500 on every page."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("collectstatic", interactive=False, verbosity=0)
