"""test_webhooks.py - webhooks against the real ternd: POST /v1/webhooks,
GET, DELETE, and the events posted to a receiver.

The receiver is Python's http.server in a thread on a loopback address;
it checks nothing itself but records every request (headers and body) and
answers with the statuses a test scripts.  Signatures are verified here
with Python's hmac, as a user's receiver would.  Mail goes in through
POST /v1/messages to local users, so every message makes an `accepted`
and a `delivered` event.  Host names resolve through the tests' dnsmasq
(`dns_server`): mx.sink.test is 127.0.0.2.
"""
import hashlib
import hmac
import http.server
import json
import re
import signal
import ssl
import threading
import time

import pytest

from api_helpers import Api
from helpers import SLOW, free_port, poll, unique_id
from relay_helpers import SINK_ADDR
from relay_helpers import dns  # noqa: F401 (fixture)
from tls_helpers import make_cert

BOB, CAROL, ALICE = "bob@tern.test", "carol@tern.test", "alice@tern.test"
WAIT = 20 * SLOW
EVENT_FIELDS = {"id", "time", "type", "message_id", "recipient", "user", "detail"}
ALL_TYPES = ["accepted", "delivered", "deferred", "bounced", "rejected"]


class Receiver:
    """An HTTP server on ADDR:PORT recording every request.  STATUSES are
    the answers to the first requests, in order; then 200."""

    def __init__(self, addr="127.0.0.1", statuses=(), tls=None):
        self.requests = []  # (path, headers dict, body bytes, status answered)
        self.statuses = list(statuses)
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    outer.requests.append((self.path, dict(self.headers.items()), body, status))
                reply = b'{"ok":true}' if status < 300 else b"no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer((addr, self.port), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host="127.0.0.1", path="/hook", scheme="http"):
        return "%s://%s:%d%s" % (scheme, host, self.port, path)

    def posts(self):
        with self.lock:
            return list(self.requests)

    def acked(self):
        """The events answered with a 2xx, in arrival order."""
        return [json.loads(b) for _, _, b, s in self.posts() if 200 <= s < 300]

    def wait(self, count, what="posts"):
        return poll(lambda: (lambda p: p if len(p) >= count else None)(self.posts()),
                    WAIT, 0.05, what="%d %s" % (count, what))

    def wait_acked(self, count):
        return poll(lambda: (lambda a: a if len(a) >= count else None)(self.acked()),
                    WAIT, 0.05, what="%d acknowledged events" % count)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(*args, **kwargs):
        r = Receiver(*args, **kwargs)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def make_api(tern_factory, dns, **settings):
    """A running ternd with http, the tests' DNS, tern.test with bob, carol
    and alice, keys for each and an admin key."""
    port = free_port()
    settings.setdefault("webhook_allow_private", "yes")
    t = tern_factory(listen="http 127.0.0.1:%d" % port, dns_server=dns.server, **settings)
    t.start()
    t.add_domain("tern.test")
    for user in (BOB, CAROL, ALICE):
        t.add_user(user)
    a = Api(t, port)
    a.key = a.create_key(BOB)
    a.carol_key = a.create_key(CAROL)
    a.admin_key = a.create_key("--admin")
    return a


@pytest.fixture
def api(request, tern_factory, dns):
    marker = request.node.get_closest_marker("tern_config")
    return make_api(tern_factory, dns, **(dict(marker.kwargs) if marker else {}))


def create(api, url, events=None, key="default", status=201, **extra):
    body = {"url": url}
    if events is not None:
        body["events"] = events
    body.update(extra)
    r = api.request("POST", "/v1/webhooks", body, key=key)
    assert r.status == status, r
    return r.json


def send(api, sender=BOB, to=CAROL, key="default"):
    msg = {"from": sender, "to": [to], "subject": "hook " + unique_id(), "text": "Hello."}
    r = api.send(msg, key=key)
    assert r.status == 202, r
    return r.json["id"]


def listing(api, key="default", query=""):
    r = api.request("GET", "/v1/webhooks" + query, key=key)
    assert r.status == 200, r
    assert set(r.json) == {"webhooks"}, r
    return r.json["webhooks"]


def stored_events(api, count, key="default", query=""):
    """The first COUNT events the store has for KEY, oldest first."""
    def enough():
        r = api.request("GET", "/v1/events?limit=1000" + query, key=key)
        assert r.status == 200, r
        return r.json["events"] if len(r.json["events"]) >= count else None
    return poll(enough, WAIT, 0.1, what="%d stored events" % count)


def signature(secret, body):
    return "sha256=" + hmac.new(secret.encode("ascii"), body, hashlib.sha256).hexdigest()


def test_events_are_posted_signed_and_in_order(api, receivers):
    rx = receivers()
    hook = create(api, rx.url())
    assert set(hook) == {"id", "secret", "url", "events"}, hook
    assert re.fullmatch(r"[0-9a-f]{64}", hook["secret"]), hook
    assert hook["url"] == rx.url() and hook["events"] == ALL_TYPES
    ids = [send(api) for _ in range(3)]
    posts = rx.wait(6)
    expected = stored_events(api, 6)
    assert len(posts) == 6, posts
    bodies = []
    for path, headers, body, _ in posts:
        assert path == "/hook"
        assert headers["X-Tern-Signature"] == signature(hook["secret"], body), headers
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"] == "tern"
        assert headers["Host"] == "127.0.0.1:%d" % rx.port
        event = json.loads(body)
        assert set(event) == EVENT_FIELDS, event
        assert headers["X-Tern-Event"] == event["type"]
        bodies.append(event)
    # Exactly the store's events, in id order, each once.
    assert bodies == expected, (bodies, expected)
    assert [e["id"] for e in bodies] == sorted(e["id"] for e in bodies)
    assert {e["message_id"] for e in bodies} == set(ids)
    assert sorted(e["type"] for e in bodies) == ["accepted"] * 3 + ["delivered"] * 3
    # A wrong secret does not verify.
    assert posts[0][1]["X-Tern-Signature"] != signature("0" * 64, posts[0][2])
    listed = listing(api)
    assert len(listed) == 1
    one = listed[0]
    assert one["id"] == hook["id"] and one["state"] == "active" and one["failures"] == 0
    assert "secret" not in one
    assert set(one) >= {"id", "url", "events", "state", "failures", "last_error", "created"}


def test_only_the_chosen_event_types_are_posted(api, receivers):
    rx = receivers()
    hook = create(api, rx.url(), events=["delivered"])
    assert hook["events"] == ["delivered"]
    send(api)
    send(api)
    stored_events(api, 4)
    acked = rx.wait_acked(2)
    # The next event of the chosen type comes after nothing else.
    send(api)
    acked = rx.wait_acked(3)
    assert [e["type"] for e in acked] == ["delivered"] * 3, acked


def test_failed_posts_are_retried_and_order_is_kept(api, receivers):
    rx = receivers(statuses=[500, 500])
    hook = create(api, rx.url())
    for _ in range(3):
        send(api)
    expected = stored_events(api, 6)
    acked = rx.wait_acked(6)
    assert acked == expected, (acked, expected)
    posts = rx.posts()
    # The two failures were the first event, tried again until it went.
    assert [p[3] for p in posts[:3]] == [500, 500, 200], posts
    assert [json.loads(p[2])["id"] for p in posts[:3]] == [expected[0]["id"]] * 3
    assert len(posts) == 8, posts
    for _, headers, body, _ in posts:
        assert headers["X-Tern-Signature"] == signature(hook["secret"], body)
    one = listing(api)[0]
    assert one["state"] == "active" and one["failures"] == 0
    assert "500" in one["last_error"], one


@pytest.mark.tern_config(webhook_max_failures="3")
def test_a_webhook_that_keeps_failing_is_disabled(api, receivers):
    rx = receivers(statuses=[503] * 100)
    hook = create(api, rx.url())
    send(api)
    stored_events(api, 2)

    def disabled():
        w = [w for w in listing(api) if w["id"] == hook["id"]]
        return w[0] if w and w[0]["state"] == "disabled" else None
    one = poll(disabled, WAIT, 0.2, what="the webhook disabled")
    assert one["failures"] == 3, one
    assert "503" in one["last_error"], one
    assert len(rx.posts()) == 3
    # Disabled for good: new events are not posted, also after a restart.
    send(api)
    stored_events(api, 4)
    api.tern.stop()
    api.tern.start()
    send(api)
    stored_events(api, 6)
    time.sleep(1.5)
    assert len(rx.posts()) == 3
    assert listing(api)[0]["state"] == "disabled"


@pytest.mark.tern_config(webhook_allow_private="no")
def test_private_addresses_are_refused(api, receivers):
    port = free_port()
    for url in ("http://127.0.0.1:%d/hook" % port,
                "http://mx.sink.test:%d/hook" % port,  # 127.0.0.2 through dnsmasq
                "http://[::1]:%d/" % port,
                "http://[::ffff:127.0.0.1]/",
                "http://10.1.2.3/",
                "http://169.254.169.254/latest/meta-data/",
                "http://192.168.0.10/",
                "https://100.64.0.1/",
                "http://0.0.0.0/"):
        r = api.request("POST", "/v1/webhooks", {"url": url})
        assert r.status == 422, (url, r)
        assert r.error_code == "forbidden_address", (url, r)
        assert r.json["error"]["message"]
    assert listing(api) == []
    assert listing(api, key=api.admin_key) == []


def test_bad_requests_are_refused(api):
    cases = [
        ({"url": "ftp://example.test/"}, "invalid_url"),
        ({"url": "http://user:pw@example.test/"}, "invalid_url"),
        ({"url": "not a url"}, "invalid_url"),
        ({"url": "http://nothere.test/hook"}, "invalid_url"),  # NXDOMAIN
        ({"url": "http://127.0.0.1/", "events": ["delivered", "opened"]}, "invalid_request"),
        ({"url": "http://127.0.0.1/", "events": "delivered"}, "invalid_request"),
        ({"url": "http://127.0.0.1/", "colour": "red"}, "invalid_request"),
        ({"events": ["delivered"]}, "invalid_request"),
        ({"url": 7}, "invalid_request"),
    ]
    for body, code in cases:
        r = api.request("POST", "/v1/webhooks", body)
        assert r.status == 400, (body, r)
        assert r.error_code == code, (body, r)
    r = api.request("POST", "/v1/webhooks", raw=b'{"url": ')
    assert r.status == 400 and r.error_code == "invalid_json", r
    r = api.request("POST", "/v1/webhooks", {"url": "http://127.0.0.1/"}, key=None)
    assert r.status == 401, r
    r = api.request("POST", "/v1/webhooks", {"url": "http://127.0.0.1/", "user": CAROL})
    assert r.status == 403, r
    assert listing(api) == []


def test_a_host_name_is_resolved_and_sent_as_host(api, receivers):
    rx = receivers(addr=SINK_ADDR)
    url = rx.url(host="mx.sink.test", path="/in?source=tern")
    hook = create(api, url, events=["accepted"])
    send(api)
    path, headers, body, _ = rx.wait(1)[0]
    assert path == "/in?source=tern"
    assert headers["Host"] == "mx.sink.test:%d" % rx.port
    assert headers["X-Tern-Signature"] == signature(hook["secret"], body)


def test_users_see_and_get_only_their_own(api, receivers):
    bob_rx, carol_rx, admin_rx = receivers(), receivers(), receivers()
    bob_hook = create(api, bob_rx.url())
    carol_hook = create(api, carol_rx.url(), key=api.carol_key)
    admin_hook = create(api, admin_rx.url(), key=api.admin_key)
    # An admin may also make one for a user: it follows that user's events.
    for_carol = create(api, carol_rx.url(path="/for-carol"), key=api.admin_key, user=CAROL)
    assert [w["id"] for w in listing(api)] == [bob_hook["id"]]
    assert [w["id"] for w in listing(api, key=api.carol_key)] == [carol_hook["id"],
                                                                 for_carol["id"]]
    everyone = listing(api, key=api.admin_key)
    assert [w["id"] for w in everyone] == [bob_hook["id"], carol_hook["id"], admin_hook["id"],
                                          for_carol["id"]]
    assert [w["id"] for w in listing(api, key=api.admin_key, query="?user=" + CAROL)] == [
        carol_hook["id"], for_carol["id"]]
    r = api.request("GET", "/v1/webhooks?user=" + CAROL)
    assert r.status == 403, r
    # Nobody deletes another user's webhook, and cannot tell it exists.
    r = api.request("DELETE", "/v1/webhooks/%d" % carol_hook["id"])
    assert r.status == 404 and r.error_code == "not_found", r
    r = api.request("DELETE", "/v1/webhooks/%d" % admin_hook["id"], key=api.carol_key)
    assert r.status == 404, r

    bob_msg = send(api)
    carol_msg = send(api, sender=CAROL, to=BOB, key=api.carol_key)
    admin_rx.wait_acked(4)
    bob_rx.wait_acked(2)
    carol_rx.wait_acked(4)
    time.sleep(0.5)
    assert {e["message_id"] for e in bob_rx.acked()} == {bob_msg}
    assert {e["user"] for e in bob_rx.acked()} == {BOB}
    assert {e["message_id"] for e in carol_rx.acked()} == {carol_msg}
    assert {e["message_id"] for e in admin_rx.acked()} == {bob_msg, carol_msg}
    assert len(admin_rx.acked()) == 4 and len(bob_rx.acked()) == 2
    assert len(carol_rx.acked()) == 4  # carol's own and the admin's for her
    for path, headers, body, _ in carol_rx.posts():
        secret = for_carol["secret"] if path == "/for-carol" else carol_hook["secret"]
        assert headers["X-Tern-Signature"] == signature(secret, body)


def test_deleted_webhooks_get_nothing_more(api, receivers):
    rx = receivers()
    hook = create(api, rx.url())
    keep = create(api, rx.url(path="/keep"), events=["accepted"])
    send(api)
    rx.wait(3)
    r = api.request("DELETE", "/v1/webhooks/%d" % hook["id"])
    assert r.status == 204 and r.body == b"", r
    r = api.request("DELETE", "/v1/webhooks/%d" % hook["id"])
    assert r.status == 404, r
    for bad in ("0", "abc", "-1", "99999999"):
        r = api.request("DELETE", "/v1/webhooks/" + bad)
        assert r.status == 404, (bad, r)
    assert [w["id"] for w in listing(api)] == [keep["id"]]
    before = len([p for p in rx.posts() if p[0] == "/hook"])
    send(api)
    # The other webhook gets the new event: the deleted one does not.
    poll(lambda: len([p for p in rx.posts() if p[0] == "/keep"]) >= 2, WAIT, 0.05,
         what="the kept webhook's second post")
    stored_events(api, 4)
    time.sleep(0.5)
    assert len([p for p in rx.posts() if p[0] == "/hook"]) == before
    # And it stays deleted after a restart.
    api.tern.stop()
    api.tern.start()
    assert [w["id"] for w in listing(api)] == [keep["id"]]


def test_progress_survives_a_restart(api, receivers):
    rx = receivers()
    hook = create(api, rx.url())
    send(api)
    first = rx.wait_acked(2)
    api.tern.stop()
    api.tern.start()
    send(api)
    acked = rx.wait_acked(4)
    expected = stored_events(api, 4)
    # Nothing lost and, after a clean stop, nothing repeated.
    assert acked[:2] == first
    assert acked == expected, (acked, expected)
    for _, headers, body, _ in rx.posts():
        assert headers["X-Tern-Signature"] == signature(hook["secret"], body)
    assert listing(api)[0]["failures"] == 0


def test_https_with_a_trusted_certificate(api, receivers, monkeypatch):
    """The receiver's certificate, for mx.sink.test, is made trusted the way
    OpenSSL finds the system's CA store: SSL_CERT_FILE (in a directory the
    daemon, running as nobody, can read)."""
    cert, key = make_cert(api.tern.dir, "mx.sink.test", "hook")
    rx = receivers(addr=SINK_ADDR, tls=(cert, key))
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    api.tern.stop()
    api.tern.start()
    good = create(api, rx.url(host="mx.sink.test", path="/good", scheme="https"),
                  events=["accepted"])
    # The same server by its address: the certificate does not name it.
    bad = create(api, rx.url(host=SINK_ADDR, path="/bad", scheme="https"), events=["accepted"])
    send(api)
    path, headers, body, _ = rx.wait(1)[0]
    assert path == "/good"
    assert headers["X-Tern-Signature"] == signature(good["secret"], body)

    def failed():
        w = [w for w in listing(api) if w["id"] == bad["id"]][0]
        return w if w["failures"] >= 1 else None
    one = poll(failed, WAIT, 0.2, what="the mismatched https post to fail")
    assert "certificate not accepted" in one["last_error"], one
    assert [p[0] for p in rx.posts()] == ["/good"]


@pytest.mark.tern_config(webhook_allow_private="no")
def test_a_reload_applies_webhook_allow_private(api, receivers):
    rx = receivers()
    r = api.request("POST", "/v1/webhooks", {"url": rx.url()})
    assert r.status == 422 and r.error_code == "forbidden_address", r
    api.tern.write_config(webhook_allow_private="yes")
    api.tern.send_signal(signal.SIGHUP)
    poll(lambda: "configuration reloaded" in api.tern.log(), WAIT, what="the reload")
    hook = create(api, rx.url())
    send(api)
    rx.wait_acked(2)
    # Back to no: the next attempt to the loopback receiver is refused.
    api.tern.write_config(webhook_allow_private="no")
    api.tern.send_signal(signal.SIGHUP)
    poll(lambda: api.tern.log().count("configuration reloaded") >= 2, WAIT, what="the reload")
    send(api)

    def refused():
        w = listing(api)[0]
        return w if w["failures"] >= 1 else None
    one = poll(refused, WAIT, 0.2, what="a refused attempt")
    assert one["id"] == hook["id"]
    assert "loopback" in one["last_error"], one
    assert len(rx.acked()) == 2


@pytest.mark.tern_config(webhook_max_failures="2")
def test_https_certificates_are_verified(api, receivers, tmp_path):
    cert, key = make_cert(str(tmp_path), "localhost", "hook")
    rx = receivers(tls=(cert, key))
    hook = create(api, rx.url(scheme="https"))
    send(api)

    def failed():
        w = listing(api)[0]
        return w if w["failures"] >= 1 or w["state"] == "disabled" else None
    one = poll(failed, WAIT, 0.2, what="a failed https post")
    # The receiver's self-signed certificate is not in the system's store.
    assert "certificate not accepted" in one["last_error"], one
    assert rx.acked() == []
    assert hook["id"] == one["id"]
