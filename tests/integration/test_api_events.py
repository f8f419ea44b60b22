"""test_api_events.py - the read side of the HTTP API: GET /v1/events (cursor
paging, filters, whose events a key sees), GET /v1/messages/ID, the live
stream GET /v1/events/stream (Server-Sent Events) and GET /v1/stats,
against the real ternd.

Mail goes in the ways users send it: POST /v1/messages, SMTP submission
with AUTH (smtplib), inbound SMTP; the remote side of deferrals and
bounces is a scripted SMTP server found through the tests' dnsmasq.  The
stream is read with http.client in a thread; the slow client is a raw
socket that never reads.
"""
import datetime
import http.client
import json
import queue
import re
import smtplib
import socket
import threading

import pytest

from api_helpers import Api
from helpers import SLOW, free_port, poll, unique_id
from relay_helpers import SCRIPT_ADDR
from relay_helpers import dns, receivers, remote_port  # noqa: F401 (fixtures)
from tls_helpers import PASSWORD, client_context, make_subtern

BOB, CAROL, ALICE = "bob@tern.test", "carol@tern.test", "alice@tern.test"
WAIT = 15 * SLOW
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EVENT_FIELDS = {"id", "time", "type", "message_id", "recipient", "user", "detail"}


@pytest.fixture
def ev(request, tern_factory, dns, remote_port):
    """A running ternd with submission and http, relaying through the test
    DNS; users bob, carol and alice; keys for bob, alice and an admin.
    Settings from @pytest.mark.tern_config are added."""
    port = free_port()
    marker = request.node.get_closest_marker("tern_config")
    t = make_subtern(tern_factory, listen=["http 127.0.0.1:%d" % port], dns_server=dns.server,
                     remote_port=str(remote_port), retry_intervals="1s", queue_lifetime="1h",
                     **(marker.kwargs if marker else {}))
    t.start()
    t.add_domain("tern.test")
    for user in (BOB, CAROL, ALICE):
        t.add_user(user, PASSWORD)
    a = Api(t, port)
    a.key = a.create_key(BOB)
    a.alice_key = a.create_key(ALICE)
    a.admin_key = a.create_key("--admin")
    return a


def send(api, to=CAROL, key="default", sender=BOB, **extra):
    msg = {"from": sender, "to": to, "subject": "events " + unique_id(), "text": "Hello."}
    msg.update(extra)
    r = api.send(msg, key=key)
    assert r.status == 202, r
    return r.json["id"]


def events(api, query="", key="default"):
    r = api.request("GET", "/v1/events" + query, key=key)
    assert r.status == 200, r
    assert set(r.json) == {"events", "next"}, r
    return r.json


def wait_events(api, query, count, key="default"):
    """Poll until QUERY returns COUNT events or more; the events."""
    return poll(lambda: (lambda e: e if len(e) >= count else None)(events(api, query, key)["events"]),
                WAIT, 0.1, what="%d events for %s" % (count, query))


def assert_error(r, status, code="invalid_request"):
    assert r.status == status, r
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    assert r.error_code == code, r
    assert r.json["error"]["message"], r


# ---- GET /v1/events ----


def test_api_message_is_accepted_then_delivered(ev):
    mid = send(ev)
    evs = wait_events(ev, "?message=" + mid, 2)
    assert [e["type"] for e in evs] == ["accepted", "delivered"]
    for e in evs:
        assert set(e) == EVENT_FIELDS, e
        assert e["message_id"] == mid and e["recipient"] == CAROL and e["user"] == BOB
        assert TIME_RE.match(e["time"]), e
    assert evs[0]["id"] < evs[1]["id"]
    assert evs[0]["time"] <= evs[1]["time"]


def test_smtp_submission_is_recorded_for_its_user(ev):
    s = smtplib.SMTP("127.0.0.1", ev.tern.submission_port, timeout=10 * SLOW)
    try:
        s.starttls(context=client_context())
        s.login(BOB, PASSWORD)
        s.sendmail(BOB, [CAROL, ALICE], "From: <%s>\r\nSubject: smtp\r\n\r\nHi.\r\n" % BOB)
    finally:
        s.quit()
    evs = wait_events(ev, "?type=delivered", 2)
    mid = evs[0]["message_id"]
    assert {e["recipient"] for e in evs} == {CAROL, ALICE}
    assert all(e["message_id"] == mid and e["user"] == BOB for e in evs)
    accepted = events(ev, "?type=accepted&message=" + mid)["events"]
    assert {e["recipient"] for e in accepted} == {CAROL, ALICE}


def test_smtp_message_summary_has_its_unfolded_subject(ev):
    s = smtplib.SMTP("127.0.0.1", ev.tern.submission_port, timeout=10 * SLOW)
    try:
        s.starttls(context=client_context())
        s.login(BOB, PASSWORD)
        s.sendmail(BOB, [CAROL], "From: <%s>\r\nX-Note: subject: not this\r\n"
                   "Subject:  a long\r\n\tfolded subject\r\nTo: <%s>\r\n\r\n"
                   "Subject: not this either\r\n" % (BOB, CAROL))
    finally:
        s.quit()
    mid = wait_events(ev, "?type=accepted", 1)[0]["message_id"]
    r = ev.request("GET", "/v1/messages/" + mid)
    assert r.status == 200, r
    assert r.json["subject"] == "a long folded subject"


def test_inbound_mail_is_seen_by_admin_keys_only(ev):
    s = smtplib.SMTP("127.0.0.1", ev.tern.smtp_port, timeout=10 * SLOW)
    try:
        s.sendmail("someone@example.org", [CAROL], "Subject: inbound\r\n\r\nHi.\r\n")
    finally:
        s.quit()
    evs = wait_events(ev, "?type=delivered", 1, key=ev.admin_key)
    assert evs[0]["recipient"] == CAROL and evs[0]["user"] == ""
    assert events(ev)["events"] == []
    assert events(ev, key=ev.create_key(CAROL))["events"] == []


def test_cursor_paging_returns_every_event_once_in_order(ev):
    for _ in range(4):
        send(ev)
    full = poll(lambda: (lambda e: e if sum(x["type"] == "delivered" for x in e) == 4 else None)(
        events(ev, "?limit=1000")["events"]), WAIT, 0.1, what="four deliveries")
    seen, since, pages = [], 0, 0
    while True:
        page = events(ev, "?limit=3&since=%d" % since)
        pages += 1
        if not page["events"]:
            assert page["next"] == since
            break
        assert len(page["events"]) <= 3
        assert page["next"] == page["events"][-1]["id"]
        seen.extend(page["events"])
        since = page["next"]
    assert seen == full
    assert pages == (len(full) + 2) // 3 + 1
    ids = [e["id"] for e in seen]
    assert ids == sorted(set(ids))
    # Polling past the end: nothing, and the cursor stays.
    assert events(ev, "?since=%d" % ids[-1]) == {"events": [], "next": ids[-1]}


def test_filters_by_type_and_message(ev):
    first = send(ev)
    second = send(ev, to=[CAROL, ALICE])
    wait_events(ev, "?type=delivered", 3)
    only = events(ev, "?message=" + second)["events"]
    assert {e["message_id"] for e in only} == {second}
    assert sorted(e["type"] for e in only) == ["accepted", "accepted", "delivered", "delivered"]
    delivered = events(ev, "?type=delivered")["events"]
    assert {e["type"] for e in delivered} == {"delivered"}
    assert {e["message_id"] for e in delivered} == {first, second}
    both = events(ev, "?type=accepted,delivered&message=" + first)["events"]
    assert [e["type"] for e in both] == ["accepted", "delivered"]
    assert events(ev, "?type=bounced")["events"] == []


def test_a_user_key_sees_only_its_users_events(ev):
    mine = send(ev)
    theirs = send(ev, key=ev.alice_key, sender=ALICE)
    wait_events(ev, "?type=delivered", 2, key=ev.admin_key)
    assert {e["message_id"] for e in events(ev)["events"]} == {mine}
    assert {e["message_id"] for e in events(ev, key=ev.alice_key)["events"]} == {theirs}
    assert {e["message_id"] for e in events(ev, key=ev.admin_key)["events"]} == {mine, theirs}
    # An admin may narrow to one user; a user may name only itself.
    assert {e["message_id"] for e in events(ev, "?user=" + ALICE, key=ev.admin_key)["events"]} \
        == {theirs}
    assert {e["message_id"] for e in events(ev, "?user=" + BOB)["events"]} == {mine}
    assert_error(ev.request("GET", "/v1/events?user=" + ALICE), 403, "forbidden")
    assert events(ev, "?message=" + theirs)["events"] == []


@pytest.mark.parametrize("query", [
    "?limit=0", "?limit=1001", "?limit=ten", "?limit=", "?since=-1", "?since=1e3",
    "?type=opened", "?type=delivered,", "?type=", "?message=../../etc", "?message=",
    "?sort=id", "?since=1&since=2", "?user=",
])
def test_bad_event_queries_are_400(ev, query):
    assert_error(ev.request("GET", "/v1/events" + query), 400)


def test_clients_that_leave_before_the_answer_do_no_harm(ev):
    """Reads are answered later (after the store); a client gone by then
    costs nothing and breaks nothing (the sanitizer build checks the
    memory side of it)."""
    mid = send(ev)
    wait_events(ev, "?message=" + mid, 2)
    paths = ["/v1/events?limit=1000", "/v1/messages/" + mid, "/v1/stats?interval=day"]
    for i in range(60):
        c = socket.create_connection(("127.0.0.1", ev.port))
        c.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (paths[i % 3], ev.key)).encode())
        if i % 2:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        c.close()
    for path in paths:
        assert ev.request("GET", path).status == 200, path
    assert ev.request("GET", "/healthz", key=None).status == 200


def test_events_need_a_key(ev):
    r = ev.request("GET", "/v1/events", key=None)
    assert_error(r, 401, "unauthorized")


# ---- GET /v1/messages/ID ----


def scripted_receiver(receivers, remote_port):
    """The remote side: busy@ is deferred (450), gone@ bounced (550)."""
    def rcpt(address, conn):
        if address.startswith("gone@"):
            return "550 5.1.1 <%s>: no such user" % address
        if address.startswith("busy@"):
            return "450 4.2.1 <%s>: try again later" % address
        return "250 2.1.5 Ok"

    return receivers.scripted(SCRIPT_ADDR, remote_port, rcpt=rcpt)


def test_message_status_per_recipient(ev, receivers, remote_port):
    scripted_receiver(receivers, remote_port)
    mid = send(ev, to=[CAROL, "busy@script.test", "gone@script.test"], tags=["invoice", "q3"])

    def settled():
        r = ev.request("GET", "/v1/messages/" + mid)
        assert r.status == 200, r
        states = {x["address"]: x for x in r.json["recipients"]}
        busy = states.get("busy@script.test", {})
        if states.get("gone@script.test", {}).get("state") == "bounced" and \
                states.get(CAROL, {}).get("state") == "delivered" and busy.get("attempts", 0) >= 2:
            return r.json
        return None

    m = poll(settled, 30 * SLOW, 0.2, what="delivered, deferred twice and bounced")
    assert set(m) == {"id", "from", "subject", "created", "tags", "recipients"}
    assert m["id"] == mid and m["from"] == BOB and m["subject"].startswith("events ")
    assert m["tags"] == ["invoice", "q3"]
    assert TIME_RE.match(m["created"]), m
    rc = {x["address"]: x for x in m["recipients"]}
    assert [x["address"] for x in m["recipients"]] == [CAROL, "busy@script.test",
                                                       "gone@script.test"]
    assert rc[CAROL]["attempts"] == 1 and rc[CAROL]["last_reply"] is not None
    assert rc["busy@script.test"]["state"] == "deferred"
    assert "450" in rc["busy@script.test"]["last_reply"]
    assert rc["gone@script.test"]["state"] == "bounced" and rc["gone@script.test"]["attempts"] == 1
    assert "550" in rc["gone@script.test"]["last_reply"]
    # The same through the event list: the attempts are its deferred events.
    deferred = events(ev, "?type=deferred&message=" + mid)["events"]
    assert len(deferred) >= rc["busy@script.test"]["attempts"]


def test_a_queued_recipient_has_no_reply_yet(ev):
    # A remote domain with no mail server: the message waits in the queue.
    mid = send(ev, to="someone@nowhere.test")
    r = ev.request("GET", "/v1/messages/" + mid)
    assert r.status == 200, r
    rcpt, = r.json["recipients"]
    assert rcpt["address"] == "someone@nowhere.test"
    if rcpt["state"] == "queued":
        assert rcpt["attempts"] == 0 and rcpt["last_reply"] is None
    else:  # the first attempt was quick
        assert rcpt["state"] in ("deferred", "bounced") and rcpt["last_reply"]


def test_message_of_another_user_is_404(ev):
    mid = send(ev)
    assert ev.request("GET", "/v1/messages/" + mid).status == 200
    assert_error(ev.request("GET", "/v1/messages/" + mid, key=ev.alice_key), 404, "not_found")
    assert ev.request("GET", "/v1/messages/" + mid, key=ev.admin_key).status == 200
    assert_error(ev.request("GET", "/v1/messages/NoSuchMessage0"), 404, "not_found")
    assert_error(ev.request("GET", "/v1/messages/a%2Fb"), 404, "not_found")
    assert_error(ev.request("GET", "/v1/messages/" + mid + "?x=1"), 400)


# ---- GET /v1/events/stream ----


class Stream:
    """A Server-Sent Events reader on its own connection and thread: the
    events (id, data as JSON) and comments it has read so far."""

    def __init__(self, api, query="", key="default", headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60 * SLOW)
        h = {"Authorization": "Bearer " + (api.key if key == "default" else key),
             "Accept": "text/event-stream"}
        h.update(headers or {})
        self.conn.request("GET", "/v1/events/stream" + query, headers=h)
        self.resp = self.conn.getresponse()
        self.items = queue.Queue()
        self.events = []
        self.comments = []
        self.closed = False
        if self.resp.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        block = []
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode("utf-8").rstrip("\n")
                if line:
                    block.append(line)
                    continue
                self.items.put(block)
                block = []
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # closed under our feet by close()
        self.items.put(None)

    def _drain(self):
        while True:
            try:
                block = self.items.get_nowait()
            except queue.Empty:
                return
            if block is None:
                self.closed = True
                continue
            fields = dict(l.split(": ", 1) for l in block if not l.startswith(":"))
            self.comments.extend(l for l in block if l.startswith(":"))
            if "data" in fields:
                data = json.loads(fields["data"])
                assert int(fields["id"]) == data["id"], block
                self.events.append(data)

    def wait(self, predicate, what):
        def check():
            self._drain()
            return predicate(self.events)

        return poll(check, WAIT, 0.05, what=what)

    def wait_started(self):
        self.wait(lambda _: self.comments, "the stream's first comment")

    def close(self):
        if self.conn.sock is not None:
            try:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conn.close()


def test_stream_delivers_events_as_they_happen(ev):
    s = Stream(ev)
    assert s.resp.status == 200
    assert s.resp.getheader("Content-Type").startswith("text/event-stream")
    s.wait_started()
    delivered_only = Stream(ev, "?type=delivered")
    delivered_only.wait_started()
    admin = Stream(ev, key=ev.admin_key)
    admin.wait_started()
    try:
        mid = send(ev)
        theirs = send(ev, key=ev.alice_key, sender=ALICE)
        got = s.wait(lambda e: [x for x in e if x["type"] == "delivered"], "bob's delivery")
        assert [x["type"] for x in s.events] == ["accepted", "delivered"]
        assert all(x["message_id"] == mid for x in s.events)
        assert set(got[0]) == EVENT_FIELDS
        # The stream and the store agree, id for id.
        assert s.events == wait_events(ev, "?message=" + mid, 2)
        delivered_only.wait(lambda e: len(e) >= 1, "the delivered event")
        admin.wait(lambda e: {x["message_id"] for x in e if x["type"] == "delivered"} ==
                   {mid, theirs}, "both deliveries on the admin stream")
        # alice's mail never reached bob's stream.
        assert all(x["user"] == BOB for x in s.events)
        assert [x["type"] for x in delivered_only.events] == ["delivered"]
    finally:
        for x in (s, delivered_only, admin):
            x.close()


def test_stream_resumes_after_last_event_id(ev):
    first = send(ev)
    second = send(ev)
    stored = wait_events(ev, "?type=delivered", 2)
    stored = events(ev)["events"]
    cut = stored[1]["id"]
    s = Stream(ev, headers={"Last-Event-ID": str(cut)})
    try:
        s.wait(lambda e: len(e) >= len(stored) - 2, "the replayed events")
        assert s.events == stored[2:]
        third = send(ev)
        s.wait(lambda e: any(x["message_id"] == third and x["type"] == "delivered" for x in e),
               "the live delivery after the replay")
        ids = [x["id"] for x in s.events]
        assert ids == sorted(set(ids)) and ids[0] > cut
        assert {first, second} <= {x["message_id"] for x in stored}
    finally:
        s.close()
    since = Stream(ev, "?since=0&type=accepted")
    try:
        since.wait(lambda e: len(e) >= 3, "every accepted event from the start")
        assert [x["message_id"] for x in since.events] == [first, second, third]
    finally:
        since.close()


def flood_user(ev, name="flood@tern.test"):
    """A user whose daily quota of 1 makes every recipient of a big message
    a `rejected` event: many events, cheaply, with no delivery."""
    ev.tern.ctl_ok("user", "add", name, "--quota-day", "1", input=PASSWORD + "\n")
    key = ev.create_key(name)

    def refuse(n=1000):
        rcpts = ["r%d@example.net" % i for i in range(n)]
        r = ev.send({"from": name, "to": rcpts, "text": "x"}, key=key)
        assert r.status == 429, r
        return n

    return key, refuse


def test_stream_replays_many_pages_then_goes_live(ev):
    key, refuse = flood_user(ev)
    sent = sum(refuse() for _ in range(3))
    wait_events(ev, "?type=rejected&limit=1000&since=2000", 1, key=key)
    s = Stream(ev, "?since=0", key=key)
    try:
        # Events emitted during the replay are held and come after it.
        sent += refuse()
        s.wait(lambda e: len(e) >= sent, "%d events, replayed and live" % sent)
        ids = [x["id"] for x in s.events]
        assert len(ids) == sent and ids == sorted(set(ids))
        assert all(x["type"] == "rejected" and x["user"] == "flood@tern.test" for x in s.events)
        stored = []
        since = 0
        while True:
            page = events(ev, "?limit=1000&since=%d" % since, key=key)
            if not page["events"]:
                break
            stored.extend(page["events"])
            since = page["next"]
        assert s.events == stored
    finally:
        s.close()


@pytest.mark.parametrize("query", ["?type=opened", "?since=x", "?user=" + ALICE, "?foo=1"])
def test_bad_stream_queries_are_refused(ev, query):
    r = ev.request("GET", "/v1/events/stream" + query)
    assert_error(r, 403 if "user" in query else 400, "forbidden" if "user" in query
                 else "invalid_request")


def test_slow_stream_client_is_dropped_and_the_server_keeps_serving(ev):
    """A listener that never reads is cut off once its backlog passes the
    limit, instead of holding the daemon's memory; everyone else goes on.
    The events are refusals (a daily quota of 1 refuses every recipient
    of a big message), which cost no delivery."""
    key, refuse = flood_user(ev)
    slow = socket.create_connection(("127.0.0.1", ev.port))
    slow.sendall(("GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % ev.admin_key).encode())
    assert slow.recv(12).startswith(b"HTTP/1.1 200")
    fast = Stream(ev, key=key)
    fast.wait_started()
    sent = 0
    try:
        for _ in range(60):
            sent += refuse()
            if "event stream of an admin key dropped" in ev.tern.log():
                break
        poll(lambda: "event stream of an admin key dropped" in ev.tern.log(), WAIT,
             what="the slow listener dropped")
        # The slow connection was closed: what it holds ends, short of
        # everything that was emitted.
        slow.settimeout(WAIT)
        received = b""
        while True:
            chunk = slow.recv(65536)
            if not chunk:
                break
            received += chunk
        assert 0 < received.count(b"\nid: ") < sent
        # Everyone else was served throughout.
        fast.wait(lambda e: len(e) >= sent, "every refusal on the reading stream")
        assert ev.request("GET", "/healthz", key=None).status == 200
        mid = send(ev)
        assert wait_events(ev, "?message=" + mid, 2)
    finally:
        slow.close()
        fast.close()


@pytest.mark.tern_config(timeout_command="2s")
def test_a_quiet_stream_stays_open_with_keepalives(ev):
    """No event for longer than the idle timeout: the stream is not idle
    (the client waits by design), and a keepalive comment comes by."""
    s = Stream(ev)
    try:
        s.wait_started()
        poll(lambda: s._drain() or any("keepalive" in c for c in s.comments), 25 * SLOW, 0.2,
             what="a keepalive comment")
        assert not s.closed
        mid = send(ev)
        s.wait(lambda e: any(x["message_id"] == mid for x in e), "an event after the quiet time")
    finally:
        s.close()


def test_stream_listeners_go_away_with_their_clients(ev):
    streams = [Stream(ev) for _ in range(20)]
    for s in streams:
        s.wait_started()
    for s in streams:
        s.close()
    # The daemon forgets them (ASan would catch a dangling listener), and
    # a new stream still gets the next events.
    s = Stream(ev)
    try:
        s.wait_started()
        mid = send(ev)
        s.wait(lambda e: any(x["message_id"] == mid for x in e), "an event after the others left")
    finally:
        s.close()


# ---- GET /v1/stats ----


def stats(api, query="", key="default"):
    r = api.request("GET", "/v1/stats" + query, key=key)
    assert r.status == 200, r
    return r.json


def totals(buckets):
    out = {}
    for b in buckets:
        for k, v in b.items():
            if k != "start":
                out[k] = out.get(k, 0) + v
    return out


def test_stats_count_what_was_sent(ev):
    for _ in range(3):
        send(ev, to=[CAROL, ALICE])
    send(ev, key=ev.alice_key, sender=ALICE)
    wait_events(ev, "?type=delivered&limit=1000", 7, key=ev.admin_key)
    s = stats(ev)
    assert s["interval"] == "hour" and len(s["buckets"]) == 24
    starts = [b["start"] for b in s["buckets"]]
    assert all(TIME_RE.match(x) and x.endswith(":00:00.000Z") for x in starts)
    assert starts == sorted(starts)
    assert totals(s["buckets"]) == {"accepted": 6, "delivered": 6, "deferred": 0, "bounced": 0,
                                    "rejected": 0}
    # The current hour is the last bucket.
    now = datetime.datetime.now(datetime.timezone.utc)
    assert starts[-1] == now.strftime("%Y-%m-%dT%H:00:00.000Z") or \
        starts[-1] == (now - datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:00:00.000Z")
    assert totals(stats(ev, key=ev.admin_key)["buckets"])["delivered"] == 7
    assert totals(stats(ev, "?user=" + ALICE, key=ev.admin_key)["buckets"])["delivered"] == 1
    day = stats(ev, "?interval=day")
    assert day["interval"] == "day" and len(day["buckets"]) == 7
    assert day["buckets"][-1]["start"] == now.strftime("%Y-%m-%dT00:00:00.000Z") or \
        now.hour == 0
    assert totals(day["buckets"])["accepted"] == 6
    # Explicit ranges, as dates and as unix seconds.
    today = now.date()
    tomorrow = today + datetime.timedelta(days=1)
    r = stats(ev, "?from=%s&to=%s" % (today, tomorrow))
    assert len(r["buckets"]) == 24 and r["buckets"][0]["start"] == "%sT00:00:00.000Z" % today
    assert totals(r["buckets"])["accepted"] == 6 or now.hour == 0
    midnight = int(datetime.datetime(today.year, today.month, today.day,
                                     tzinfo=datetime.timezone.utc).timestamp())
    r2 = stats(ev, "?interval=day&from=%d&to=%sT00:00:00Z" % (midnight, tomorrow))
    assert len(r2["buckets"]) == 1 and r2["buckets"][0]["start"] == "%sT00:00:00.000Z" % today
    # Event counts and statistics agree.
    assert len(events(ev, "?type=delivered&limit=1000")["events"]) == totals(r2["buckets"])[
        "delivered"]


@pytest.mark.parametrize("query", [
    "?interval=week", "?from=yesterday", "?from=2026-02-30", "?to=2026-11-29T25:00:00Z",
    "?from=2026-11-29T08:00:00", "?from=2026-11-29&to=2026-11-28", "?from=0&to=4000000000",
    "?from=1&from=2", "?bucket=hour", "?user=",
])
def test_bad_stats_queries_are_400(ev, query):
    assert_error(ev.request("GET", "/v1/stats" + query), 400)


def test_stats_of_another_user_are_forbidden(ev):
    assert_error(ev.request("GET", "/v1/stats?user=" + ALICE), 403, "forbidden")
