"""test_sending_rules.py - quotas, the rate limit and suppression lists,
on SMTP submission and the HTTP API alike (DESIGN.md: "quota or rate
exceeded 4xx 4.7.x", "suppressed recipient 550 5.7.1", API 429 with
Retry-After and 422).

One daemon per test listens on submission (STARTTLS + AUTH, smtplib) and
http (urllib); remote domains are served by the relay tests' dnsmasq and a
scripted receiver, so a hard bounce comes from a real SMTP conversation.
A user's use is counted on both paths together, and survives a restart.
"""
import smtplib

import pytest

from api_helpers import Api
from helpers import SLOW, free_port, poll, unique_id
from relay_helpers import SCRIPT_ADDR
from relay_helpers import dns, receivers, remote_port  # noqa: F401 (fixtures)
from tls_helpers import PASSWORD, client_context, make_subtern

QUOTA_USER = "quota@tern.test"
RCPT = "carol@tern.test"


@pytest.fixture
def rules(tern_factory, dns, remote_port):
    """A running ternd: submission, http, tern.test with bob, carol and
    alice; relaying to the test domains through the test DNS."""
    port = free_port()
    t = make_subtern(tern_factory, listen=["http 127.0.0.1:%d" % port], dns_server=dns.server,
                     remote_port=str(remote_port), retry_intervals="1s", queue_lifetime="1h")
    t.start()
    t.add_domain("tern.test")
    for user in ("bob@tern.test", RCPT, "alice@tern.test"):
        t.add_user(user, PASSWORD)
    a = Api(t, port)
    a.admin_key = a.create_key("--admin")
    t.api = a
    return t


def add_limited_user(t, address, *options):
    t.ctl_ok("user", "add", address, *options, input=PASSWORD + "\n")
    return t.api.create_key(address)


def login(t, user):
    s = smtplib.SMTP("127.0.0.1", t.submission_port, timeout=10 * SLOW)
    s.ehlo("client.test")
    s.starttls(context=client_context())
    s.ehlo("client.test")
    s.login(user, PASSWORD)
    return s


def message(sender, to, subject):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nHello.\r\n" %
            (sender, to, subject)).encode()


def smtp_send(t, user, rcpts, subject=None):
    """One message from USER over submission; the replies to MAIL, each
    RCPT and DATA (None when not reached)."""
    s = login(t, user)
    try:
        mail = s.mail(user)
        if mail[0] != 250:
            return mail, [], None
        rcpt = [s.rcpt(r) for r in rcpts]
        if not any(code == 250 for code, _ in rcpt):
            return mail, rcpt, None
        data = s.data(message(user, rcpts[0], subject or "rules " + unique_id()))
        return mail, rcpt, data
    finally:
        s.quit()


def api_send(t, key, sender, rcpts):
    return t.api.send({"from": sender, "to": rcpts, "subject": "api " + unique_id(),
                       "text": "Hello."}, key=key)


def retry_after(reply):
    value = reply.headers.get("Retry-After")
    assert value is not None and value.isdigit(), reply
    return int(value)


def rejected_events(t, key):
    r = t.api.request("GET", "/v1/events?type=rejected&limit=1000", key=key)
    assert r.status == 200, r
    return r.json["events"]


# ---- quotas ----


def test_daily_quota_counts_smtp_and_api_together_and_survives_restart(rules):
    t = rules
    key = add_limited_user(t, QUOTA_USER, "--quota-day", "3")
    mail, rcpt, data = smtp_send(t, QUOTA_USER, [RCPT, "bob@tern.test"])
    assert [c for c, _ in rcpt] == [250, 250] and data[0] == 250
    assert api_send(t, key, QUOTA_USER, [RCPT]).status == 202
    # Three recipients used: the API is refused with 429 and Retry-After...
    r = api_send(t, key, QUOTA_USER, ["alice@tern.test"])
    assert r.status == 429 and r.error_code == "quota_exceeded", r
    assert 0 < retry_after(r) <= 86400
    # ...and SMTP with 4xx 4.7.x at RCPT.
    mail, rcpt, data = smtp_send(t, QUOTA_USER, ["alice@tern.test"])
    assert mail[0] == 250
    code, text = rcpt[0]
    assert code // 100 == 4 and text.startswith(b"4.7."), rcpt
    assert data is None
    # The count is kept across a restart.
    assert t.stop() == 0
    t.start()
    mail, rcpt, _ = smtp_send(t, QUOTA_USER, ["alice@tern.test"])
    assert rcpt[0][0] // 100 == 4 and rcpt[0][1].startswith(b"4.7."), rcpt
    assert api_send(t, key, QUOTA_USER, [RCPT]).status == 429
    # Refusals are recorded as rejected events, seen by the user.
    events = poll(lambda: [e for e in rejected_events(t, key) if e["recipient"]], 10 * SLOW,
                  what="rejected events")
    assert {e["recipient"] for e in events} >= {"alice@tern.test", RCPT}
    # Other users are not limited by it.
    assert smtp_send(t, "bob@tern.test", ["alice@tern.test"])[2][0] == 250


def test_quota_counts_recipients_of_one_message(rules):
    t = rules
    add_limited_user(t, QUOTA_USER, "--quota-day", "2")
    mail, rcpt, data = smtp_send(t, QUOTA_USER, [RCPT, "bob@tern.test", "alice@tern.test"])
    codes = [c for c, _ in rcpt]
    assert codes[:2] == [250, 250] and codes[2] // 100 == 4, rcpt
    assert data[0] == 250  # the two accepted recipients get the message
    t.wait_messages(RCPT)
    t.wait_messages("bob@tern.test")
    assert t.messages("alice@tern.test") == []


def test_monthly_quota_refuses_with_429_and_451(rules):
    t = rules
    key = add_limited_user(t, QUOTA_USER, "--quota-month", "1")
    assert api_send(t, key, QUOTA_USER, [RCPT]).status == 202
    r = api_send(t, key, QUOTA_USER, [RCPT])
    assert r.status == 429 and r.error_code == "quota_exceeded", r
    assert retry_after(r) > 0
    _, rcpt, _ = smtp_send(t, QUOTA_USER, [RCPT])
    assert rcpt[0][0] == 451 and rcpt[0][1].startswith(b"4.7.1"), rcpt


def test_quota_can_be_raised_at_once(rules):
    t = rules
    key = add_limited_user(t, QUOTA_USER, "--quota-day", "1")
    assert api_send(t, key, QUOTA_USER, [RCPT]).status == 202
    assert api_send(t, key, QUOTA_USER, [RCPT]).status == 429
    t.ctl_ok("user", "set", QUOTA_USER, "--quota-day", "5")
    assert api_send(t, key, QUOTA_USER, [RCPT]).status == 202


# ---- rate limit ----


def test_rate_limit_counts_messages_per_minute_on_both_paths(rules):
    t = rules
    key = add_limited_user(t, QUOTA_USER, "--rate", "2")
    assert smtp_send(t, QUOTA_USER, [RCPT])[2][0] == 250
    assert api_send(t, key, QUOTA_USER, [RCPT]).status == 202
    # The third message within the minute: MAIL gets 4xx 4.7.x...
    mail, _, _ = smtp_send(t, QUOTA_USER, [RCPT])
    assert mail[0] // 100 == 4 and mail[1].startswith(b"4.7."), mail
    # ...and the API 429 with a wait of at most a minute.
    r = api_send(t, key, QUOTA_USER, [RCPT])
    assert r.status == 429 and r.error_code == "rate_limited", r
    assert 1 <= retry_after(r) <= 60


# ---- suppression ----


def hard_bounce_receiver(receivers, remote_port):
    def rcpt(address, n):
        if address.startswith("gone"):
            return "550 5.1.1 <%s>: Recipient address rejected: no such user" % address
        if address.startswith("busy"):
            return "450 4.2.1 <%s>: try again later" % address
        return "250 2.1.5 Ok"

    return receivers.scripted(SCRIPT_ADDR, remote_port, rcpt=rcpt)


def suppressions(t, key=None):
    r = t.api.request("GET", "/v1/suppressions", key=key or t.api.admin_key)
    assert r.status == 200, r
    return r.json["suppressions"]


def test_hard_bounce_suppresses_the_address_for_its_sender(rules, receivers, remote_port):
    t = rules
    hard_bounce_receiver(receivers, remote_port)
    bob_key = t.api.create_key("bob@tern.test")
    _, rcpt, data = smtp_send(t, "bob@tern.test", ["gone@script.test", "busy@script.test",
                                                   "here@script.test"])
    assert [c for c, _ in rcpt] == [250, 250, 250] and data[0] == 250
    entries = poll(lambda: [s for s in suppressions(t, bob_key)
                            if s["address"] == "gone@script.test"],
                   20 * SLOW, 0.2, what="the hard-bounced address on bob's list")
    assert "550" in entries[0]["reason"]
    # A deferral (4xx) and a delivery suppress nothing.
    assert {s["address"] for s in suppressions(t, bob_key)} == {"gone@script.test"}
    # Sending there again: SMTP 550 5.7.1 at RCPT, API 422, both recorded.
    _, rcpt, _ = smtp_send(t, "bob@tern.test", ["Gone@Script.test"])
    assert rcpt[0][0] == 550 and rcpt[0][1].startswith(b"5.7.1"), rcpt
    r = api_send(t, bob_key, "bob@tern.test", ["here@script.test", "gone@script.test"])
    assert r.status == 422 and r.error_code == "suppressed_recipient", r
    assert "gone@script.test" in r.json["error"]["message"]
    events = poll(lambda: [e for e in rejected_events(t, bob_key)
                           if e["recipient"].lower() == "gone@script.test"],
                  10 * SLOW, what="rejected events for the suppressed address")
    assert len(events) >= 2
    # The list is bob's: alice may still send there.
    _, rcpt, _ = smtp_send(t, "alice@tern.test", ["gone@script.test"])
    assert rcpt[0][0] == 250, rcpt


def test_suppression_managed_through_the_api_applies_to_smtp(rules):
    t = rules
    key = t.api.create_key("bob@tern.test")
    r = t.api.request("POST", "/v1/suppressions",
                      {"address": "Unwanted@Example.NET", "reason": "asked to stop"}, key=key)
    assert r.status == 201, r
    _, rcpt, _ = smtp_send(t, "bob@tern.test", ["unwanted@example.net"])
    assert rcpt[0][0] == 550 and rcpt[0][1].startswith(b"5.7.1"), rcpt
    r = t.api.request("DELETE", "/v1/suppressions/unwanted@example.net", key=key)
    assert r.status == 204, r
    _, rcpt, _ = smtp_send(t, "bob@tern.test", [RCPT, "unwanted@example.net"])
    assert [c for c, _ in rcpt] == [250, 250], rcpt


def test_suppressions_survive_a_restart(rules):
    t = rules
    key = t.api.create_key("bob@tern.test")
    r = t.api.request("POST", "/v1/suppressions", {"address": "kept@example.net",
                                                   "reason": "complaint"}, key=key)
    assert r.status == 201, r
    assert t.stop() == 0
    t.start()
    _, rcpt, _ = smtp_send(t, "bob@tern.test", ["kept@example.net"])
    assert rcpt[0][0] == 550, rcpt
    assert [s["address"] for s in suppressions(t, key)] == ["kept@example.net"]
