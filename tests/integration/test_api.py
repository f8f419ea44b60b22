"""test_api.py - the HTTP API's sending side: POST /v1/messages, API keys
(ternctl apikey), the error contract of DESIGN.md "HTTP API v1", limits,
keep-alive and /healthz, against the real ternd.

Delivered messages are read back from the recipients' Maildirs with
Python's email package and compared with what was sent.
"""
import email
import email.policy
import hashlib
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from api_helpers import api, b64, spooled  # noqa: F401 (api is a fixture)
from helpers import SLOW, poll


def read_parsed(tern, address, count=1):
    paths = tern.wait_messages(address, count)
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
    return out


def assert_error(reply, status, code):
    assert reply.status == status, reply
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply.headers
    assert set(reply.json) == {"error"}, reply
    assert reply.json["error"]["code"] == code, reply
    assert reply.json["error"]["message"], reply


def test_healthz_answers_without_a_key(api):
    r = api.request("GET", "/healthz", key=None)
    assert r.status == 200
    assert r.json == {"status": "ok"}
    assert api.request("HEAD", "/healthz", key=None).status == 200


def test_full_message_arrives_intact(api):
    api.tern.add_user("dave@tern.test")
    pdf = os.urandom(20000)
    png = bytes(range(256)) * 3
    subject = "Grüße aus Köln — Rechnung №42 ✓"
    msg = {
        "from": "Jürgen Groß <bob@tern.test>",
        "to": ["Carol Example <carol@tern.test>"],
        "cc": "bob+copies@tern.test",
        "bcc": ["carol@tern.test", "Dave <dave@tern.test>"],
        "reply_to": "Support <support@tern.test>",
        "subject": subject,
        "text": "Hallo Carol,\nanbei die Rechnung.\n",
        "html": "<p>Hallo <b>Carol</b>,</p>\n<p>anbei die Rechnung. €</p>\n",
        "headers": {"X-Campaign": "spring-2024", "X-Note": "straße"},
        "attachments": [
            {"filename": "Rechnung für März.pdf", "content_type": "application/pdf",
             "content": b64(pdf)},
            {"filename": "logo.png", "content_type": "image/png", "content": b64(png)},
        ],
        "tags": ["invoice", "2024-03"],
    }
    r = api.send(msg)
    assert r.status == 202, r
    assert r.json["id"] and r.json["message_id"].startswith("<" + r.json["id"])
    # to, cc and bcc are the envelope, each address once.
    assert r.json["recipients"] == ["carol@tern.test", "bob+copies@tern.test",
                                    "dave@tern.test"]
    carol, = read_parsed(api.tern, "carol@tern.test")
    bob, = read_parsed(api.tern, "bob@tern.test")
    dave, = read_parsed(api.tern, "dave@tern.test")
    for m in (carol, bob, dave):
        assert m["Subject"] == subject
        assert m["From"].addresses[0].display_name == "Jürgen Groß"
        assert m["From"].addresses[0].addr_spec == "bob@tern.test"
        assert [a.addr_spec for a in m["To"].addresses] == ["carol@tern.test"]
        assert m["To"].addresses[0].display_name == "Carol Example"
        assert [a.addr_spec for a in m["Cc"].addresses] == ["bob+copies@tern.test"]
        assert m["Reply-To"].addresses[0].addr_spec == "support@tern.test"
        assert m["Bcc"] is None
        assert m["Message-ID"] == r.json["message_id"]
        assert m["Date"].datetime is not None
        assert m["X-Campaign"] == "spring-2024"
        assert m["X-Note"] == "straße"
        assert m["X-Tern-Tags"] == "invoice, 2024-03"
        assert m.get_content_type() == "multipart/mixed"
        assert not m.defects and not any(p.defects for p in m.walk())
        parts = list(m.iter_parts())
        assert [p.get_content_type() for p in parts] == [
            "multipart/alternative", "application/pdf", "image/png"]
        text, html = parts[0].iter_parts()
        assert text.get_content_type() == "text/plain"
        assert text.get_content() == "Hallo Carol,\nanbei die Rechnung.\n"
        assert html.get_content_type() == "text/html"
        assert html.get_content() == "<p>Hallo <b>Carol</b>,</p>\n<p>anbei die Rechnung. €</p>\n"
        assert parts[1].get_filename() == "Rechnung für März.pdf"
        assert parts[1].get_content_disposition() == "attachment"
        assert parts[1].get_payload(decode=True) == pdf
        assert parts[2].get_filename() == "logo.png"
        assert hashlib.sha256(parts[2].get_payload(decode=True)).digest() == \
            hashlib.sha256(png).digest()
    for who in ("carol@tern.test", "dave@tern.test"):
        raw = open(api.tern.messages(who)[0], "rb").read()
        # Delivered-To names the mailbox; nothing else may name the Bcc.
        body = raw.split(b"Delivered-To: ", 1)[1].split(b"\n", 1)[1]
        # (base64 and queue ids may spell "dave" by chance; an address cannot)
        assert b"dave@" not in body.lower()
        head = body.split(b"\n\n", 1)[0]
        assert b"\nbcc:" not in b"\n" + head.lower()
        assert all(b < 0x80 for b in raw), "the message must be 7-bit"
        assert max(len(line) for line in raw.split(b"\n")) <= 998
        assert max(len(line) for line in head.split(b"\n")) <= 78


def test_text_only_message(api):
    r = api.send({"from": "bob@tern.test", "to": "carol@tern.test", "subject": "plain",
                  "text": "just text"})
    assert r.status == 202, r
    m, = read_parsed(api.tern, "carol@tern.test")
    assert m.get_content_type() == "text/plain"
    assert m.get_content().rstrip("\n") == "just text"
    assert m["Subject"] == "plain"


@pytest.mark.parametrize("auth", [None, "Basic Ym9iOnNlY3JldA==", "Bearer",
                                  "Bearer tern_nosuchkeynosuchkeynosuchkeynosuchkeynosuc",
                                  "Bearer " + "x" * 2000])
def test_missing_or_bad_key_is_401(api, auth):
    headers = {"Authorization": auth} if auth else {}
    r = api.request("POST", "/v1/messages",
                    {"from": "bob@tern.test", "to": "carol@tern.test", "text": "x"},
                    key=None, headers=headers)
    assert_error(r, 401, "unauthorized")
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert api.tern.messages("carol@tern.test") == []


def test_revoked_key_stops_working_when_ternctl_returns(api):
    key = api.create_key("bob@tern.test")
    msg = {"from": "bob@tern.test", "to": "carol@tern.test", "text": "x"}
    assert api.send(msg, key=key).status == 202
    listing = api.tern.ctl_ok("apikey", "list")
    line = [l for l in listing.splitlines() if key[:12] in l]
    assert len(line) == 1 and " bob@tern.test " in line[0], listing
    key_id = line[0].split()[0]
    api.tern.ctl_ok("apikey", "revoke", key_id)
    assert_error(api.send(msg, key=key), 401, "unauthorized")
    assert "revoked=" in [l for l in api.tern.ctl_ok("apikey", "list").splitlines()
                          if l.startswith(key_id + " ")][0]
    # Other keys keep working; revoking twice fails.
    assert api.send(msg).status == 202
    assert api.tern.ctl("apikey", "revoke", key_id).returncode == 1


def test_deleted_user_loses_its_keys(api):
    api.tern.ctl_ok("user", "del", "bob@tern.test")
    r = api.send({"from": "bob@tern.test", "to": "carol@tern.test", "text": "x"})
    assert_error(r, 401, "unauthorized")


def test_ternctl_apikey_usage_errors(api):
    for args in (["apikey"], ["apikey", "create"], ["apikey", "revoke", "x"],
                 ["apikey", "frob"], ["apikey", "list", "extra"]):
        cp = api.tern.ctl(*args)
        assert cp.returncode == 2, (args, cp)
    cp = api.tern.ctl("apikey", "create", "nobody@tern.test")
    assert cp.returncode == 1 and "no such user" in cp.stderr


def test_foreign_from_is_403(api):
    for sender in ("carol@tern.test", "Bob <bob@elsewhere.example>", "postmaster@tern.test"):
        r = api.send({"from": sender, "to": "carol@tern.test", "text": "x"})
        assert_error(r, 403, "forbidden_sender")
    assert api.tern.messages("carol@tern.test") == []
    assert spooled(api.tern) == []
    # Its own address with a +tag, and any address with an admin key.
    assert api.send({"from": "bob+news@tern.test", "to": "carol@tern.test",
                     "text": "x"}).status == 202
    r = api.send({"from": "carol@tern.test", "to": "bob@tern.test", "text": "x"},
                 key=api.admin_key)
    assert r.status == 202, r
    m, = read_parsed(api.tern, "bob@tern.test")
    assert m["From"].addresses[0].addr_spec == "carol@tern.test"


@pytest.mark.parametrize("change", [
    {"headers": {"X-Evil": "a\r\nBcc: victim@elsewhere.example"}},
    {"headers": {"X-Evil": "a\nX-Other: b"}},
    {"headers": {"X-Evil\r\nBcc": "victim@elsewhere.example"}},
    {"headers": {"Bcc": "victim@elsewhere.example"}},
    {"headers": {"From": "ceo@tern.test"}},
    {"headers": {"content-type": "text/html"}},
    {"headers": {"Message-ID": "<x@y>"}},
    {"subject": "hello\r\nBcc: victim@elsewhere.example"},
    {"subject": "hello\rworld"},
])
def test_header_injection_is_400(api, change):
    msg = {"from": "bob@tern.test", "to": "carol@tern.test", "subject": "s", "text": "x"}
    msg.update(change)
    assert_error(api.send(msg), 400, "invalid_header")
    assert spooled(api.tern) == []
    assert api.tern.messages("carol@tern.test") == []


@pytest.mark.parametrize("raw, code", [
    (b"{", "invalid_json"),
    (b"", "invalid_json"),
    (b"[]", "invalid_json"),
    (b'"a string"', "invalid_json"),
    (b'{"from": "bob@tern.test"} trailing', "invalid_json"),
    (b'{"from": "bob@tern.test", "from": "carol@tern.test", "to": "carol@tern.test", '
     b'"text": "x"}', "invalid_json"),
    (b'{"from": "bob@tern.test", "to": "carol@tern.test", "text": "\xff\xfe"}',
     "invalid_json"),
    (b'{"from": "bob@tern.test", "to": "carol@tern.test", "text": "a\\u0000b"}',
     "invalid_json"),
    (b'{"from": 7, "to": "carol@tern.test", "text": "x"}', "invalid_request"),
    (b'{"to": "carol@tern.test", "text": "x"}', "invalid_request"),
    (b'{"from": "bob@tern.test", "text": "x"}', "invalid_request"),
    (b'{"from": "bob@tern.test", "to": "carol@tern.test"}', "invalid_request"),
    (b'{"from": "bob@tern.test", "to": "carol@tern.test", "text": "x", "sender": "y"}',
     "invalid_request"),
    (b'{"from": "bob@tern.test", "to": ["not an address"], "text": "x"}', "invalid_address"),
    (b'{"from": "Bob <bob@tern.test", "to": "carol@tern.test", "text": "x"}',
     "invalid_address"),
    (b'{"from": "bob@tern.test", "to": "carol@tern.test", "text": "x", '
     b'"attachments": [{"filename": "a.bin", "content": "not base64!"}]}', "invalid_request"),
    (b'{"from": "bob@tern.test", "to": "carol@tern.test", "text": "x", '
     b'"attachments": [{"filename": "../../etc/passwd", "content": "eA=="}]}',
     "invalid_request"),
    (b'{"from": "bob@tern.test", "to": "carol@tern.test", "text": "x", '
     b'"tags": ["has space"]}', "invalid_request"),
])
def test_malformed_requests_are_400(api, raw, code):
    assert_error(api.request("POST", "/v1/messages", raw=raw), 400, code)
    assert spooled(api.tern) == []


def test_wrong_content_type_is_415(api):
    r = api.request("POST", "/v1/messages", raw=b"from=bob@tern.test",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 415, "unsupported_media_type")


def test_unknown_paths_and_methods(api):
    assert_error(api.request("GET", "/v1/nothing"), 404, "not_found")
    r = api.request("GET", "/v1/messages")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "POST"


def test_oversized_message_is_413(api):
    # max_message_size is 100K in the tests.  A message over it whose
    # request still fits the body limit: refused after decoding, in JSON.
    att = b64(os.urandom(110 * 1024))
    r = api.send({"from": "bob@tern.test", "to": "carol@tern.test", "text": "x",
                  "attachments": [{"filename": "big.bin", "content": att}]})
    assert_error(r, 413, "message_too_large")
    # A body far over the limit is refused before it is read into memory.
    body = json.dumps({"from": "bob@tern.test", "to": "carol@tern.test",
                       "text": "x" * (400 * 1024)}).encode()
    assert api.request("POST", "/v1/messages", raw=body).status == 413
    # ... also with curl and chunked transfer encoding.
    cp = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                         "-H", "Authorization: Bearer " + api.key,
                         "-H", "Content-Type: application/json",
                         "-H", "Transfer-Encoding: chunked",
                         "--data-binary", "@-", api.base + "/v1/messages"],
                        input=body, capture_output=True, timeout=30 * SLOW)
    assert cp.stdout == b"413", cp
    assert spooled(api.tern) == []
    # Still serving.
    assert api.request("GET", "/healthz", key=None).status == 200


def test_unknown_local_recipient_is_422(api):
    r = api.send({"from": "bob@tern.test", "to": ["carol@tern.test", "nobody@tern.test"],
                  "text": "x"})
    assert_error(r, 422, "unknown_recipient")
    assert "nobody@tern.test" in r.json["error"]["message"]
    assert spooled(api.tern) == []
    time.sleep(0.3)
    assert api.tern.messages("carol@tern.test") == []


def test_keep_alive_two_requests_on_one_connection(api):
    conn = api.connection()
    try:
        headers = {"Authorization": "Bearer " + api.key, "Content-Type": "application/json"}
        body = json.dumps({"from": "bob@tern.test", "to": "carol@tern.test", "text": "one"})
        conn.request("POST", "/v1/messages", body=body, headers=headers)
        r1 = conn.getresponse()
        assert r1.status == 202
        json.loads(r1.read())
        sock = conn.sock
        local = sock.getsockname()
        assert not r1.will_close
        conn.request("GET", "/healthz")
        r2 = conn.getresponse()
        assert r2.status == 200
        r2.read()
        # The same socket carried both: http.client did not reconnect.
        assert conn.sock is sock and sock.getsockname() == local
    finally:
        conn.close()
    read_parsed(api.tern, "carol@tern.test")


def test_curl_reuses_the_connection(api):
    cp = subprocess.run(["curl", "-sv", api.base + "/healthz", api.base + "/healthz"],
                        capture_output=True, text=True, timeout=30 * SLOW)
    assert cp.returncode == 0
    assert cp.stdout.count('{"status":"ok"}') == 2
    assert "Re-using existing connection" in cp.stderr or "Reusing existing" in cp.stderr


@pytest.mark.tern_config(timeout_command="2s")
def test_idle_connection_is_closed(api):
    with socket.create_connection(("127.0.0.1", api.port), timeout=10 * SLOW) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        assert 1 <= time.monotonic() - start <= 8 * SLOW


def test_accepted_message_survives_a_kill(api):
    """202 means on disk: killed right after the answer, the daemon still
    delivers the message when it starts again."""
    r = api.send({"from": "bob@tern.test", "to": "carol@tern.test", "subject": "durable",
                  "text": "x"})
    assert r.status == 202
    api.tern.kill()
    api.tern.start()
    m, = read_parsed(api.tern, "carol@tern.test")
    assert m["Message-ID"] == r.json["message_id"]
    assert api.request("GET", "/healthz", key=None).status == 200


def test_remote_recipients_are_accepted(api):
    r = api.send({"from": "bob@tern.test", "to": ["Someone <Someone@Elsewhere.example>"],
                  "text": "x"})
    assert r.status == 202, r
    assert r.json["recipients"] == ["Someone@Elsewhere.example"]


def documented_operations():
    """(path, method, statuses) of docs/openapi.yaml, read by indentation
    (the standard library has no YAML parser; the file keeps this form)."""
    import re
    here = os.path.dirname(os.path.abspath(__file__))
    ops, path, method = [], None, None
    with open(os.path.join(here, "..", "..", "docs", "openapi.yaml")) as f:
        in_paths = False
        for line in f:
            if re.match(r"^\S", line):
                in_paths = line.startswith("paths:")
                continue
            if not in_paths:
                continue
            m = re.match(r"^  (/\S*):\s*$", line)
            if m:
                path = m.group(1)
                continue
            m = re.match(r"^    (get|head|post|put|delete|patch|options):\s*$", line)
            if m:
                method = m.group(1).upper()
                ops.append((path, method, set()))
                continue
            m = re.match(r'^        "(\d{3})":', line)
            if m and ops:
                ops[-1][2].add(int(m.group(1)))
    return ops


# Values for the path parameters of documented paths: no such message,
# an address on no list.
PATH_SAMPLES = {"{id}": "NoSuchMessage0", "{address}": "nobody@example.org"}


def documented_request(api, method, path):
    """One documented operation with the admin key.  A stream answers
    with its status and headers and never ends: only those are read."""
    if path.endswith("/stream"):
        conn = api.connection()
        try:
            conn.request(method, path, headers={"Authorization": "Bearer " + api.admin_key})
            resp = conn.getresponse()
            return resp.status
        finally:
            conn.close()
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    return api.request(method, path, raw=body, key=api.admin_key).status


def test_every_documented_path_answers(api):
    ops = documented_operations()
    assert ("/v1/messages", "POST") in [(p, m) for p, m, _ in ops]
    assert ("/healthz", "GET") in [(p, m) for p, m, _ in ops]
    for path, method, statuses in ops:
        concrete = path
        for name, value in PATH_SAMPLES.items():
            concrete = concrete.replace(name, value)
        assert "{" not in concrete, "no sample value for a parameter of %s" % path
        status = documented_request(api, method, concrete)
        assert status in statuses, (path, method, status)
        assert status != 405, (path, method, status)
        # A path with a parameter may well be 404 for the sample value;
        # one without must exist.
        assert status != 404 or concrete != path, (path, method, status)


def test_sighup_applies_new_limits_and_keeps_keys(api):
    msg = {"from": "bob@tern.test", "to": "carol@tern.test", "text": "x" * 30000}
    assert api.send(msg).status == 202
    api.tern.write_config(max_message_size="20K")
    api.tern.send_signal(signal.SIGHUP)
    poll(lambda: "configuration reloaded" in api.tern.log(), 10 * SLOW,
         what="the reload in the log")
    poll(lambda: "API keys reloaded" in api.tern.log(), 10 * SLOW,
         what="the keys reloaded")
    assert_error(api.send(msg), 413, "message_too_large")
    assert api.send({"from": "bob@tern.test", "to": "carol@tern.test",
                     "text": "small"}).status == 202


def test_user_added_again_does_not_inherit_old_keys(api):
    """Deleting a user deletes its keys; a new user at the same address
    starts without them, from the moment ternctl returns."""
    msg = {"from": "bob@tern.test", "to": "carol@tern.test", "text": "x"}
    assert api.send(msg).status == 202
    api.tern.ctl_ok("user", "del", "bob@tern.test")
    api.tern.add_user("bob@tern.test", "another")
    assert_error(api.send(msg), 401, "unauthorized")
    new_key = api.create_key("bob@tern.test")
    assert api.send(msg, key=new_key).status == 202


def test_keys_keep_working_across_account_changes(api):
    msg = {"from": "bob@tern.test", "to": "carol@tern.test", "text": "x"}
    for i in range(3):
        api.tern.add_user("user%d@tern.test" % i)
        assert api.send(msg).status == 202
        assert api.send(msg, key=api.admin_key).status == 202
    read_parsed(api.tern, "carol@tern.test", 6)


def test_spool_failure_is_503(api):
    """No 202 without the message on disk: when the spool cannot write,
    the client hears 503 and may try again."""
    tmp = os.path.join(api.tern.data_dir, "spool", "tmp")
    mode = os.stat(tmp).st_mode
    os.chmod(tmp, 0o500)
    try:
        r = api.send({"from": "bob@tern.test", "to": "carol@tern.test", "text": "x"})
        assert_error(r, 503, "unavailable")
    finally:
        os.chmod(tmp, mode)
    assert spooled(api.tern) == []
    assert api.send({"from": "bob@tern.test", "to": "carol@tern.test",
                     "text": "x"}).status == 202
    read_parsed(api.tern, "carol@tern.test")
