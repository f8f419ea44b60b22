"""test_queue_control.py - `ternctl queue list|show|flush|delete|hold|release`
on a running ternd (DESIGN.md "ternctl", issue 4; output in docs/relay.md).

`list` prints one line per message, id first, then the sender, each
recipient with its state, the next attempt and the last reply; `show` the
envelope and the message's headers; `flush` retries now; `delete` removes
without a bounce; `hold` stops attempts (kept across a restart) until
`release`.  Errors exit 1 with the reason, bad usage exits 2.
"""
import os
import re
import time
from datetime import datetime, timezone

from helpers import SLOW, make_message, poll, unique_id
from relay_helpers import (SCRIPT_ADDR, SENDER, bounces, queue_lines, send, wait_queue_empty)
from relay_helpers import dns, receivers, relay, remote_port  # noqa: F401 (fixtures)

LINE_RE = re.compile(r'^(?P<id>[0-9A-Za-z]{16}) from=<(?P<sender>[^>]*)> to=(?P<rcpts>\S+) '
                     r'next=(?P<next>\S+)(?P<flags>( active| held)*) last="(?P<last>.*)"$')


def parse_line(line):
    m = LINE_RE.match(line)
    assert m, "queue list line not in the documented form: %r" % line
    d = m.groupdict()
    d["rcpts"] = dict(re.match(r"<(.*)>:(\w+)$", r).groups() for r in d["rcpts"].split(","))
    return d


def deferring(receivers, remote_port, accept_after=None):
    """A receiver that answers 451 to every RCPT until ACCEPT_AFTER
    transactions (None: always); 'ok@' recipients are always taken."""
    def rcpt(address, n):
        if address.startswith("ok@") or (accept_after is not None and n >= accept_after):
            return "250 2.1.5 Ok"
        return "451 4.7.1 Greylisted, try again"

    return receivers.scripted(SCRIPT_ADDR, remote_port, rcpt=rcpt)


def wait_deferred(tern, qid):
    def deferred():
        for line in queue_lines(tern):
            if line.startswith(qid + " ") and ":deferred" in line:
                return parse_line(line)
        return None

    return poll(deferred, 10 * SLOW, 0.1, what="%s deferred" % qid)


def test_list_shows_id_sender_states_next_attempt_and_last_reply(relay, receivers, remote_port):
    deferring(receivers, remote_port)
    t = relay(retry_intervals="1h")
    assert queue_lines(t) == []
    qid = send(t, ["ok@script.test", "later@script.test"], make_message("list", sender=SENDER))
    entry = wait_deferred(t, qid)
    assert entry["id"] == qid
    assert entry["sender"] == SENDER
    assert entry["rcpts"] == {"ok@script.test": "delivered", "later@script.test": "deferred"}
    assert entry["last"] == "451 4.7.1 Greylisted, try again"
    nxt = datetime.strptime(entry["next"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    wait = nxt.timestamp() - time.time()
    assert 3500 < wait <= 3600, entry["next"]


def test_show_prints_envelope_and_headers(relay, receivers, remote_port):
    deferring(receivers, remote_port)
    t = relay(retry_intervals="1h")
    subject = "shown %s" % unique_id()
    qid = send(t, ["later@script.test"], make_message(subject, sender=SENDER))
    wait_deferred(t, qid)
    out = t.ctl_ok("queue", "show", qid)
    assert "id %s" % qid in out
    assert "sender %s" % SENDER in out
    assert "rcpt later@script.test" in out
    assert "rcpt-state queued" in out and "rcpt-attempts 1" in out
    assert "rcpt-remote-mta mx.script.test" in out
    assert "Subject: %s" % subject in out
    assert "Hello." not in out  # the headers only, not the body


def test_flush_retries_at_once(relay, receivers, remote_port):
    rx = deferring(receivers, remote_port, accept_after=1)
    t = relay(retry_intervals="1h")
    qid = send(t, ["later@script.test"], make_message("flush", sender=SENDER))
    wait_deferred(t, qid)
    assert t.ctl_ok("queue", "flush").strip() == "flushed 1 message(s)"
    rx.wait_delivered(1, timeout=10 * SLOW)
    wait_queue_empty(t)


def test_flush_one_message(relay, receivers, remote_port):
    rx = deferring(receivers, remote_port, accept_after=2)
    t = relay(retry_intervals="1h")
    first = send(t, ["a@script.test"], make_message("one", sender=SENDER))
    second = send(t, ["b@script.test"], make_message("two", sender=SENDER))
    wait_deferred(t, first)
    wait_deferred(t, second)
    t.ctl_ok("queue", "flush", second)
    rx.wait_delivered(1, timeout=10 * SLOW)
    lines = queue_lines(t)
    assert [parse_line(l)["id"] for l in lines] == [first]


def test_hold_survives_restart_and_release_delivers(relay, receivers, remote_port):
    rx = deferring(receivers, remote_port)
    t = relay(retry_intervals="1s")
    qid = send(t, ["later@script.test"], make_message("hold", sender=SENDER))
    wait_deferred(t, qid)
    t.ctl_ok("queue", "hold", qid)
    entry = parse_line(queue_lines(t)[0])
    assert entry["next"] == "held" and " held" in entry["flags"]
    tries = len(rx.transactions())
    time.sleep(2.5)
    t.ctl_ok("queue", "flush")  # a flush does not move a held message
    time.sleep(0.5)
    assert len(rx.transactions()) == tries, "a held message was attempted"
    assert t.stop() == 0
    t.start()
    assert parse_line(queue_lines(t)[0])["next"] == "held"
    time.sleep(1.5)
    assert len(rx.transactions()) == tries
    rx.rcpt = lambda address, n: "250 2.1.5 Ok"
    t.ctl_ok("queue", "release", qid)
    rx.wait_delivered(1, timeout=10 * SLOW)
    wait_queue_empty(t)


def test_delete_removes_without_bounce(relay, receivers, remote_port):
    rx = deferring(receivers, remote_port)
    t = relay(retry_intervals="1s")
    qid = send(t, ["later@script.test"], make_message("delete", sender=SENDER))
    wait_deferred(t, qid)
    t.ctl_ok("queue", "delete", qid)
    assert queue_lines(t) == []
    assert not os.path.exists(os.path.join(t.data_dir, "spool", "msg", qid))
    tries = len(rx.transactions())
    time.sleep(2)
    assert len(rx.transactions()) == tries
    assert bounces(t) == []
    # Gone for good: a restart does not bring it back.
    assert t.stop() == 0
    t.start()
    assert queue_lines(t) == []


def test_errors_and_usage(relay, tern_factory):
    t = relay()
    cp = t.ctl("queue", "show", "0000000000000000")
    assert cp.returncode == 1 and "no such message" in cp.stderr
    cp = t.ctl("queue", "delete", "0000000000000000")
    assert cp.returncode == 1 and "no such message" in cp.stderr
    for args in (("queue",), ("queue", "bogus"), ("queue", "show"), ("queue", "list", "x"),
                 ("queue", "hold", "../etc/passwd"), ("queue", "flush", "a", "b")):
        cp = t.ctl(*args)
        assert cp.returncode == 2, (args, cp.returncode, cp.stderr)
    stopped = tern_factory()
    cp = stopped.ctl("queue", "list")
    assert cp.returncode == 1 and "not running" in cp.stderr
