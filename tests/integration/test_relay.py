"""test_relay.py - outgoing mail: MX routing, retries, bounces and reports.

The remote side is real: a private dnsmasq holds the test domains
(relay_helpers.TEST_DOMAINS), Postfix's smtp-sink and a small scripted
receiver listen on 127.0.0.N at the port ternd uses as `remote_port`, and a
private Postfix takes mail over STARTTLS.  Mail enters through ternd's SMTP
listener from a `relay_from` network, sent by bob@tern.test (a local user),
so every bounce or report lands in bob's Maildir, where it is read with
Python's email package.

Contracts (issue 4, DESIGN.md): MX preference order and fallback, implicit
MX, null MX and NXDOMAIN bounce at once, a 4xx is retried after
retry_intervals and bounces with 4.4.7 after queue_lifetime, a 5xx bounces
with an RFC 3464 report (Final-Recipient, Action, Status, Remote-MTA,
Diagnostic-Code, the original headers), NOTIFY honoured, one transaction
per message and domain, connection reuse, the user's source address,
opportunistic STARTTLS, restarts keep the schedule, a crash during delivery
loses nothing.
"""
import os
import smtplib
import ssl
import time

import pytest

from helpers import DAEMON_PW, SLOW, make_message, poll, unique_id
from relay_helpers import (DEAD_ADDR, IMPLICIT_ADDR, LIVE_ADDR, POSTFIX_ADDR, PRIO1_ADDR,
                           PRIO2_ADDR, SCRIPT_ADDR, SENDER, SINK_ADDR, SOURCE_ADDR, bounces,
                           parse_message, postfix_usable, queue_lines, report_parts, send, to_lf,
                           wait_queue_empty, wait_reports)
from relay_helpers import dns, receivers, relay, remote_port  # noqa: F401 (fixtures)

# ---- delivery ----


def test_body_arrives_byte_for_byte_8bit_and_long(relay, receivers, remote_port):
    sink = receivers.sink(SINK_ADDR, remote_port)
    t = relay()
    eight = make_message("8-bit", body="Grüße aus Köln, naïve café\n.leading dot\n..two dots\n",
                         sender=SENDER, to="anna@sink.test")
    line = "".join(chr(33 + (i % 90)) for i in range(900))
    long_body = "\n".join("%06d %s" % (i, line) for i in range(1200)) + "\nend\n"
    long = make_message("long", body=long_body, sender=SENDER, to="anna@sink.test")
    assert len(long) > 1000000
    send(t, ["anna@sink.test"], eight)
    send(t, ["anna@sink.test"], long)
    got = sink.wait(2)
    bodies = [m["message"] for m in got]
    # Our Received header goes first; after it the message is unchanged.
    for sent in (eight, long):
        matches = [b for b in bodies if b.endswith(to_lf(sent))]
        assert len(matches) == 1, "message not delivered intact"
        head = matches[0][:-len(to_lf(sent))]
        assert head.startswith(b"Received: from "), head[:200]
    eight_rec = [m for m in got if m["message"].endswith(to_lf(eight))][0]
    assert "BODY=8BITMIME" in eight_rec["mail"]
    assert eight_rec["rcpts"] == ["<anna@sink.test>"]
    assert eight_rec["helo"] == "mx.tern.test"
    wait_queue_empty(t)


def test_mx_preference_order(relay, receivers, remote_port):
    best = receivers.sink(PRIO1_ADDR, remote_port)
    worse = receivers.sink(PRIO2_ADDR, remote_port)
    t = relay()
    for i in range(3):
        send(t, ["x%d@prio.test" % i], make_message("prio %d" % i, sender=SENDER))
    best.wait(3)
    wait_queue_empty(t)
    assert worse.messages() == []


def test_fallback_to_next_mx_when_first_does_not_answer(relay, receivers, remote_port):
    live = receivers.sink(LIVE_ADDR, remote_port)
    t = relay()
    send(t, ["someone@fallback.test"], make_message("fallback", sender=SENDER))
    got = live.wait(1)
    assert got[0]["rcpts"] == ["<someone@fallback.test>"]
    wait_queue_empty(t)
    assert DEAD_ADDR in t.log() or "dead.fallback.test" in t.log()


def test_fallback_to_next_mx_after_4xx_greeting(relay, receivers, remote_port):
    busy = receivers.scripted(PRIO1_ADDR, remote_port, greeting="421 4.3.2 Too busy, go away")
    sink = receivers.sink(PRIO2_ADDR, remote_port)
    t = relay()
    send(t, ["someone@prio.test"], make_message("busy first", sender=SENDER))
    assert sink.wait(1)[0]["rcpts"] == ["<someone@prio.test>"]
    wait_queue_empty(t)
    assert len(busy.connections) >= 1 and busy.transactions() == []


def test_implicit_mx_uses_the_domains_address(relay, receivers, remote_port):
    sink = receivers.sink(IMPLICIT_ADDR, remote_port)
    t = relay()
    send(t, ["who@implicit.test"], make_message("implicit", sender=SENDER))
    assert sink.wait(1)[0]["rcpts"] == ["<who@implicit.test>"]
    wait_queue_empty(t)


# ---- bounces ----


def test_null_mx_bounces_at_once(relay):
    t = relay()
    qid = send(t, ["nobody@nullmx.test"], make_message("to null mx", sender=SENDER))
    raw = wait_reports(t)[0]
    msg, per_msg, rcpts, original = report_parts(raw)
    assert msg["To"].strip("<> ") == SENDER
    assert len(rcpts) == 1
    assert rcpts[0]["final-recipient"] == "rfc822; nobody@nullmx.test"
    assert rcpts[0]["action"] == "failed"
    assert rcpts[0]["status"] == "5.1.10"
    assert per_msg["x-tern-queue-id"] == qid
    wait_queue_empty(t)
    assert len(bounces(t)) == 1


def test_nxdomain_bounces_at_once(relay):
    t = relay()
    send(t, ["nobody@no-such-domain.test"], make_message("to nowhere", sender=SENDER))
    raw = wait_reports(t)[0]
    _, _, rcpts, _ = report_parts(raw)
    assert rcpts[0]["action"] == "failed"
    assert rcpts[0]["status"] == "5.1.2"
    wait_queue_empty(t)


def test_dns_timeout_defers_without_bounce(relay):
    t = relay(retry_intervals="1h")
    qid = send(t, ["someone@tempfail.test"], make_message("dns down", sender=SENDER))
    line = poll(lambda: [l for l in queue_lines(t) if "deferred" in l], 30 * SLOW, 0.2,
                what="a deferral after the DNS timeout")[0]
    assert line.startswith(qid) and "451 4.4.3" in line, line
    assert bounces(t) == []


def test_local_recipient_gone_after_acceptance_bounces(relay):
    """A recipient that no longer exists when the queue gets to it (here: a
    spool file found at start) is bounced with a report, like a remote 5xx."""
    t = relay()
    assert t.stop() == 0
    qid = "0AAAAAAAAA" + unique_id()[:6].upper().replace("-", "A")
    envelope = ("tern-spool 1\nid %s\nreceived %d\nsize 0\nsender %s\nrcpt gone@tern.test\n"
                "rcpt-notify 0\nrcpt-state queued\nrcpt-attempts 0\nrcpt-next-attempt 0\n\n"
                % (qid, int(time.time()), SENDER))
    body = make_message("for a deleted user", sender=SENDER, to="gone@tern.test")
    path = os.path.join(t.data_dir, "spool", "msg", qid)
    with open(path, "wb") as f:
        f.write(envelope.encode() + body)
    os.chown(path, DAEMON_PW.pw_uid, DAEMON_PW.pw_gid)
    os.chmod(path, 0o600)
    t.start()
    raw = wait_reports(t)[0]
    _, per_msg, rcpts, original = report_parts(raw)
    assert per_msg["x-tern-queue-id"] == qid
    assert rcpts[0]["final-recipient"] == "rfc822; gone@tern.test"
    assert rcpts[0]["action"] == "failed" and rcpts[0]["status"] == "5.1.1"
    assert "remote-mta" not in rcpts[0]
    assert "Subject: for a deleted user" in original.get_payload(decode=True).decode()
    wait_queue_empty(t)


def test_5xx_bounce_lists_failed_recipients_with_remote_reply(relay, receivers, remote_port):
    def rcpt(address, n):
        if address.startswith("gone"):
            return "550 5.1.1 <%s>: Recipient address rejected: no such user" % address
        return "250 2.1.5 Ok"

    rx = receivers.scripted(SCRIPT_ADDR, remote_port, rcpt=rcpt)
    t = relay()
    subject = "bounce me %s" % unique_id()
    message = make_message(subject, sender=SENDER, extra_headers=["X-Tracking: 42"])
    send(t, ["gone1@script.test", "here@script.test", "gone2@script.test"], message)
    raw = wait_reports(t)[0]
    msg, per_msg, rcpts, original = report_parts(raw)
    assert "MAILER-DAEMON@mx.tern.test" in msg["From"]
    assert msg["Auto-Submitted"].startswith("auto-replied")
    assert per_msg["reporting-mta"] == "dns; mx.tern.test"
    # One report naming both failed recipients, not the delivered one.
    finals = sorted(r["final-recipient"] for r in rcpts)
    assert finals == ["rfc822; gone1@script.test", "rfc822; gone2@script.test"]
    for r in rcpts:
        assert r["action"] == "failed"
        assert r["status"] == "5.1.1"
        assert r["remote-mta"] == "dns; mx.script.test"
        assert r["diagnostic-code"].startswith("smtp; 550 5.1.1 <gone")
        assert "no such user" in r["diagnostic-code"]
    # The original's headers come back (RET unset: headers only).
    assert original.get_content_type() == "text/rfc822-headers"
    text = original.get_payload(decode=True).decode()
    assert "Subject: %s" % subject in text and "X-Tracking: 42" in text
    # The good recipient got it once; the report was sent with the null sender.
    assert len(rx.delivered()) == 1
    wait_queue_empty(t)
    assert parse_message(bounces(t)[0])["Return-Path"].strip() == "<>"


def test_4xx_is_retried_then_delivered(relay, receivers, remote_port):
    rx = receivers.scripted(
        SCRIPT_ADDR, remote_port,
        data=lambda n: "451 4.3.0 Try again later" if n == 0 else "250 2.0.0 Ok: queued")
    t = relay(retry_intervals="2s")
    qid = send(t, ["later@script.test"], make_message("retry", sender=SENDER))
    # The first attempt failed: the queue says so, with the reply.
    line = poll(lambda: [l for l in queue_lines(t) if "deferred" in l], 10, 0.1,
                what="a deferred recipient")[0]
    assert line.startswith(qid + " ")
    assert "451 4.3.0 Try again later" in line
    rx.wait_delivered(1, timeout=15 * SLOW)
    wait_queue_empty(t)
    assert len(rx.delivered()) == 1
    assert len(rx.transactions()) == 2
    assert bounces(t) == []


def test_expired_message_bounces_with_4_4_7(relay, receivers, remote_port):
    receivers.scripted(SCRIPT_ADDR, remote_port, rcpt=lambda a, n: "450 4.2.1 Mailbox busy")
    t = relay(retry_intervals="1s", queue_lifetime="3s")
    send(t, ["busy@script.test"], make_message("expire", sender=SENDER))
    raw = wait_reports(t, timeout=20 * SLOW)[0]
    _, _, rcpts, _ = report_parts(raw)
    assert rcpts[0]["action"] == "failed"
    assert rcpts[0]["status"] == "4.4.7"
    assert "450 4.2.1 Mailbox busy" in rcpts[0].get("diagnostic-code", "")
    wait_queue_empty(t)


def test_delay_warning_not_sent_when_not_asked_for(relay, receivers, remote_port):
    receivers.scripted(SCRIPT_ADDR, remote_port, rcpt=lambda a, n: "451 4.4.0 Not now")
    t = relay(retry_intervals="1s", delay_warning="1s", queue_lifetime="1h")
    qid = send(t, ["slow@script.test"], make_message("no delay report", sender=SENDER),
               rcpt_params=" NOTIFY=FAILURE")
    time.sleep(3)
    assert bounces(t) == []
    t.ctl_ok("queue", "delete", qid)


def test_notify_never_sends_no_bounce(relay, receivers, remote_port):
    receivers.scripted(SCRIPT_ADDR, remote_port, rcpt=lambda a, n: "550 5.1.1 No such user")
    t = relay()
    send(t, ["x@script.test"], make_message("never", sender=SENDER), rcpt_params=" NOTIFY=NEVER")
    wait_queue_empty(t)
    time.sleep(1)
    assert bounces(t) == []
    assert "bounced" in t.log()


def test_notify_success_reports_relay_to_server_without_dsn(relay, receivers, remote_port):
    rx = receivers.scripted(SCRIPT_ADDR, remote_port, dsn=False)
    t = relay()
    send(t, ["ok@script.test"], make_message("success please", sender=SENDER),
         rcpt_params=" NOTIFY=SUCCESS,FAILURE")
    rx.wait_delivered(1)
    raw = wait_reports(t)[0]
    _, _, rcpts, original = report_parts(raw)
    assert rcpts[0]["final-recipient"] == "rfc822; ok@script.test"
    assert rcpts[0]["action"] == "relayed"
    assert rcpts[0]["status"].startswith("2.")
    # No DSN at the peer: NOTIFY was not passed on.
    assert "NOTIFY" not in rx.transactions()[0].rcpts[0][0]
    wait_queue_empty(t)


def test_notify_passed_on_to_server_with_dsn_and_no_report(relay, receivers, remote_port):
    sink = receivers.sink(SINK_ADDR, remote_port)
    t = relay()
    send(t, ["ok@sink.test"], make_message("dsn peer", sender=SENDER),
         mail_params=" RET=HDRS ENVID=abc123", rcpt_params=" NOTIFY=SUCCESS,DELAY")
    rec = sink.wait(1)[0]
    assert "NOTIFY=SUCCESS,DELAY" in rec["rcpts"][0]
    assert "RET=HDRS" in rec["mail"] and "ENVID=abc123" in rec["mail"]
    wait_queue_empty(t)
    time.sleep(1)
    assert bounces(t) == []


@pytest.mark.parametrize("notify", [" NOTIFY=DELAY,FAILURE", ""], ids=["asked", "local-default"])
def test_delay_warning_once_then_still_retrying(relay, receivers, remote_port, notify):
    """Sent to senders who asked, and without NOTIFY to local users."""
    receivers.scripted(SCRIPT_ADDR, remote_port, rcpt=lambda a, n: "451 4.4.0 Not now")
    t = relay(retry_intervals="1s", delay_warning="2s", queue_lifetime="1h")
    qid = send(t, ["slow@script.test"], make_message("delay", sender=SENDER), rcpt_params=notify)
    raw = wait_reports(t)[0]
    _, _, rcpts, original = report_parts(raw)
    assert rcpts[0]["action"] == "delayed"
    assert rcpts[0]["status"].startswith("4.")
    assert "will-retry-until" in rcpts[0]
    time.sleep(3)
    assert len(bounces(t)) == 1, "the delay warning is sent once"
    assert any(l.startswith(qid) and "deferred" in l for l in queue_lines(t))
    t.ctl_ok("queue", "delete", qid)


# ---- transactions and connections ----


def test_several_recipients_at_one_domain_share_one_transaction(relay, receivers, remote_port):
    rx = receivers.scripted(SCRIPT_ADDR, remote_port)
    t = relay()
    rcpts = ["a@script.test", "b@script.test", "c@script.test"]
    send(t, rcpts, make_message("together", sender=SENDER))
    rx.wait_delivered(1)
    wait_queue_empty(t)
    txns = rx.transactions()
    assert len(txns) == 1
    assert sorted(a.split(">")[0].lstrip("<") for a, _ in txns[0].rcpts) == rcpts


def test_connection_is_reused_for_the_next_message(relay, receivers, remote_port):
    rx = receivers.scripted(SCRIPT_ADDR, remote_port)
    t = relay()
    send(t, ["one@script.test"], make_message("first", sender=SENDER))
    rx.wait_delivered(1)
    send(t, ["two@script.test"], make_message("second", sender=SENDER))
    rx.wait_delivered(2)
    wait_queue_empty(t)
    assert len(rx.connections) == 1
    assert len(rx.connections[0].transactions) == 2


def test_connections_to_one_domain_are_limited(relay, receivers, remote_port):
    rx = receivers.scripted(SCRIPT_ADDR, remote_port)
    rx.hold()  # every transaction waits at "." until released
    t = relay(relay_destination_concurrency="4")
    for i in range(8):
        send(t, ["m%d@script.test" % i], make_message("parallel %d" % i, sender=SENDER))
    poll(lambda: sum(x.data is not None for x in rx.transactions()) >= 4, 10, 0.1,
         what="four transactions at the receiver")
    time.sleep(1)
    assert rx.most_open == 4
    rx.release()
    rx.wait_delivered(8)
    wait_queue_empty(t)
    # The other four messages went over the same connections.
    assert len(rx.connections) == 4


def test_sending_users_source_address_is_used(relay, receivers, remote_port):
    rx = receivers.scripted(SCRIPT_ADDR, remote_port)
    t = relay(submission=True)
    t.ctl_ok("user", "add", "carol@tern.test", "--source-ip", SOURCE_ADDR, input="pw-carol\n")
    # carol authenticates on the submission port (STARTTLS, then AUTH).
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", t.submission_port, local_hostname="client.example",
                      timeout=30) as s:
        s.starttls(context=ctx)
        s.login("carol@tern.test", "pw-carol")
        s.sendmail("carol@tern.test", ["src@script.test"],
                   make_message("source", sender="carol@tern.test", to="src@script.test"))
    # bob has no address of his own: the default.
    send(t, ["src2@script.test"], make_message("default source", sender=SENDER))
    rx.wait_delivered(2)
    peers = {c.transactions[0].rcpts[0][0]: c.peer for c in rx.connections if c.transactions}
    assert peers["<src@script.test>"] == SOURCE_ADDR
    assert peers["<src2@script.test>"] != SOURCE_ADDR


def test_sender_address_of_a_user_picks_its_source_without_auth(relay, receivers, remote_port):
    rx = receivers.scripted(SCRIPT_ADDR, remote_port)
    t = relay()
    t.ctl_ok("user", "add", "carol@tern.test", "--source-ip", SOURCE_ADDR, input="pw\n")
    send(t, ["src@script.test"], make_message("source", sender="carol@tern.test"),
         sender="carol@tern.test")
    rx.wait_delivered(1)
    assert rx.connections[0].peer == SOURCE_ADDR


@pytest.mark.skipif(not postfix_usable(), reason="needs root and Debian's postfix")
def test_starttls_and_delivery_to_a_real_postfix(relay, receivers, remote_port):
    pf = receivers.postfix(POSTFIX_ADDR, remote_port)
    t = relay()
    subject = "to postfix %s" % unique_id()
    message = make_message(subject, body="über TLS\n", sender=SENDER)
    send(t, ["joe@postfix.test"], message)
    try:
        raw = pf.wait(1)[0]
    except AssertionError:
        raise AssertionError("postfix log:\n" + pf.log())
    assert to_lf(message) in raw
    head = raw.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    assert "with ESMTPS" in head and "using TLS" in head, head
    assert "Delivered-To: joe@postfix.test" in head
    wait_queue_empty(t)
    assert "with TLS" in t.log()


@pytest.mark.skipif(not postfix_usable(), reason="needs root and Debian's postfix")
def test_smarthost_takes_all_mail_over_tls(relay, receivers, remote_port):
    pf = receivers.postfix(POSTFIX_ADDR, remote_port)
    # smarthost.test is not in the DNS: only the smarthost can deliver it.
    t = relay(relay_host="%s:%d" % (POSTFIX_ADDR, remote_port))
    send(t, ["amy@smarthost.test"], make_message("via smarthost", sender=SENDER))
    raw = pf.wait(1)[0]
    head = raw.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    assert "Delivered-To: amy@smarthost.test" in head
    assert "with ESMTPS" in head, head
    wait_queue_empty(t)


def test_smarthost_without_tls_is_not_used(relay, receivers, remote_port):
    sink = receivers.sink(SINK_ADDR, remote_port)  # smtp-sink offers no STARTTLS
    t = relay(relay_host="%s:%d" % (SINK_ADDR, remote_port), retry_intervals="1h")
    qid = send(t, ["amy@sink.test"], make_message("must not go in clear", sender=SENDER))
    line = poll(lambda: [l for l in queue_lines(t) if "deferred" in l], 10, 0.1,
                what="a deferral")[0]
    assert line.startswith(qid) and "4.7.0" in line, line
    time.sleep(1)
    assert sink.messages() == []


# ---- restarts and crashes ----


def test_restart_keeps_the_retry_schedule(relay, receivers, remote_port):
    rx = receivers.scripted(SCRIPT_ADDR, remote_port,
                            data=lambda n: "451 4.3.0 Later" if n == 0 else "250 2.0.0 Ok")
    t = relay(retry_intervals="4s")
    qid = send(t, ["restart@script.test"], make_message("restart", sender=SENDER))
    poll(lambda: any("deferred" in l for l in queue_lines(t)), 10, 0.1, what="a deferral")
    assert t.stop() == 0
    assert len(rx.transactions()) == 1
    t.start()
    # Still deferred right after the start: the next attempt was kept.
    lines = queue_lines(t)
    assert any(l.startswith(qid) and "deferred" in l for l in lines), lines
    rx.wait_delivered(1, timeout=15 * SLOW)
    wait_queue_empty(t)
    assert len(rx.delivered()) == 1


def test_kill_during_delivery_loses_nothing(relay, receivers, remote_port):
    rx = receivers.scripted(SCRIPT_ADDR, remote_port)
    rx.hold()  # the reply to "." does not come
    t = relay()
    send(t, ["crash@script.test"], make_message("crash", sender=SENDER))
    poll(lambda: any(x.data is not None for x in rx.transactions()), 10, 0.1,
         what="the message data at the receiver")
    t.kill()
    rx.release()
    t.start()
    rx.wait_delivered(1, timeout=15 * SLOW)
    wait_queue_empty(t)
    # At least once; the first copy's reply came too late to count.
    assert 1 <= len(rx.delivered()) <= 2
    assert bounces(t) == []
