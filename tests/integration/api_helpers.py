"""api_helpers.py - what the HTTP API tests share: a ternd with an http
listener, API keys made with ternctl, and small JSON-over-HTTP clients
(urllib for one-off requests, http.client where the connection matters).

The daemon and ternctl are conftest's ($TERN_BUILD/ternd and ternctl).
TERN_API_TERND and TERN_API_TERNCTL, when set, name other binaries to use
instead (a build of the API that is not in the tree's binaries yet).
"""
import base64
import http.client
import json
import os
import urllib.error
import urllib.request

import pytest

import conftest
from helpers import SLOW, free_port

if os.environ.get("TERN_API_TERND"):
    conftest.TERND = os.path.abspath(os.environ["TERN_API_TERND"])
if os.environ.get("TERN_API_TERNCTL"):
    conftest.TERNCTL = os.path.abspath(os.environ["TERN_API_TERNCTL"])

HTTP_TIMEOUT = 15 * SLOW


class Reply:
    """An HTTP answer: status, headers (case-insensitive), raw body, JSON."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            self.json = None

    @property
    def error_code(self):
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"].get("code")
        return None

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:500])


class Api:
    """A running ternd with `listen http`, tern.test, bob@ and carol@, and an
    API key for bob (self.key) and an admin key (self.admin_key)."""

    def __init__(self, tern, port):
        self.tern = tern
        self.port = port
        self.base = "http://127.0.0.1:%d" % port
        self.key = None
        self.admin_key = None

    def create_key(self, owner):
        """A new key for OWNER (an address, or "--admin") from ternctl."""
        out = self.tern.ctl_ok("apikey", "create", owner).strip()
        assert out.startswith("tern_") and len(out) == 48, out
        return out

    def request(self, method, path, body=None, key="default", headers=None, raw=None):
        """One request on a new connection (urllib).  BODY is sent as JSON,
        RAW as bytes; KEY "default" is bob's key, None sends no key."""
        if key == "default":
            key = self.key
        data = raw if raw is not None else (
            json.dumps(body).encode("utf-8") if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if key is not None:
            req.add_header("Authorization", "Bearer " + key)
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
                return Reply(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, e.headers, e.read())

    def send(self, message, key="default"):
        return self.request("POST", "/v1/messages", message, key=key)

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)


def b64(data):
    return base64.b64encode(data).decode("ascii")


def spooled(tern):
    """Names of the messages in the spool (committed, not yet delivered)."""
    d = os.path.join(tern.data_dir, "spool", "msg")
    try:
        return sorted(os.listdir(d))
    except FileNotFoundError:
        return []


@pytest.fixture
def api(request, tern_factory):
    """An Api; settings from @pytest.mark.tern_config as for `tern`."""
    marker = request.node.get_closest_marker("tern_config")
    settings = dict(marker.kwargs) if marker else {}
    port = free_port()
    settings.setdefault("listen", "http 127.0.0.1:%d" % port)
    t = tern_factory(**settings)
    t.start()
    t.add_domain("tern.test")
    t.add_user("bob@tern.test")
    t.add_user("carol@tern.test")
    a = Api(t, port)
    a.key = a.create_key("bob@tern.test")
    a.admin_key = a.create_key("--admin")
    return a
