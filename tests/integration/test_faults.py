"""test_faults.py - ternd under injected faults: the disk, DNS and the peer.

Contracts (issue 6 item 2, DESIGN.md): a full disk while receiving answers
452 4.3.1 and leaves nothing half-written or delivered, and service resumes
when space returns; a read-only spool answers 4xx and loses nothing; with
the DNS server down, a remote message is deferred, not bounced; a remote MX
that says nothing (until relay_timeout_command), closes mid-transaction or
sends a 10 MB reply line costs a deferral, never the message, and ternd
stays bounded and serving.

The filesystem faults need root (a tmpfs mounted by the test); the remote
side is relay_helpers' DNS plus fault_helpers.BadPeer on SCRIPT_ADDR.
"""
import os
import tempfile
import time

import pytest

from helpers import (DAEMON_PW, SLOW, data_block, free_port, make_message, poll, proc_status,
                     unique_id)
from fault_helpers import files_under, fill, free_bytes, remount
from fault_helpers import bad_peers, mounts  # noqa: F401 (fixtures)
from relay_helpers import SCRIPT_ADDR, SENDER, bounces, queue_lines, send, wait_queue_empty
from relay_helpers import dns, relay, remote_port  # noqa: F401 (fixtures)

BOB = "bob@tern.test"


def started_on(tern_factory, data_dir):
    t = tern_factory(data_dir=data_dir)
    t.start()
    t.add_domain("tern.test")
    t.add_user(BOB)
    return t


def spool_messages(t):
    return files_under(os.path.join(t.data_dir, "spool", "msg"))


def spool_tmp(t):
    return files_under(os.path.join(t.data_dir, "spool", "tmp"))


def transaction(c, message, rcpt=BOB):
    """MAIL, RCPT, DATA and the message on C; the reply to the final dot."""
    c.expect("MAIL FROM:<alice@example.org>", 250)
    c.expect("RCPT TO:<%s>" % rcpt, 250)
    c.expect("DATA", 354)
    c.send(data_block(message))
    return c.reply()


def deferred_line(t, qid, timeout=20 * SLOW):
    line = poll(lambda: [l for l in queue_lines(t) if l.startswith(qid) and "deferred" in l],
                timeout, 0.1, what="message %s deferred" % qid)[0]
    return line


# ---- the disk ----


def test_disk_full_while_receiving_452_then_resumes(tern_factory, workroot, mounts):
    data_dir = tempfile.mkdtemp(prefix="df", dir=workroot)
    mounts.tmpfs(data_dir, "2m")
    t = started_on(tern_factory, data_dir)
    filler = fill(data_dir, leave=16 * 1024)
    assert free_bytes(data_dir) < 40 * 1024
    big = make_message("does not fit %s" % unique_id(), body=("y" * 76 + "\n") * 800)
    assert len(big) > 60 * 1024
    before = spool_messages(t)
    with t.smtp(ehlo=True) as c:
        r = transaction(c, big)
        assert (r.code, r.enhanced) == (452, "4.3.1"), r
        # Nothing half-written stays behind, nothing reaches the mailbox.
        assert spool_messages(t) == before
        assert spool_tmp(t) == []
        time.sleep(0.5)
        assert t.messages(BOB) == []
        # The session goes on.
        c.expect("NOOP", 250)
        os.unlink(filler)
        subject = "fits now %s" % unique_id()
        r = transaction(c, make_message(subject, body=("z" * 76 + "\n") * 250))
        assert r.code == 250, r
        c.expect("QUIT", 221)
    got = t.wait_messages(BOB, 1)
    assert len(got) == 1
    assert ("Subject: %s" % subject).encode() in open(got[0], "rb").read()
    poll(lambda: spool_messages(t) == [], 10 * SLOW, what="an empty spool")


def test_read_only_spool_4xx_then_resumes(tern_factory, workroot, mounts):
    data_dir = tempfile.mkdtemp(prefix="ro", dir=workroot)
    os.chown(data_dir, DAEMON_PW.pw_uid, DAEMON_PW.pw_gid)
    spool = mounts.tmpfs(os.path.join(data_dir, "spool"), "8m", owner=DAEMON_PW, mode="0700")
    t = started_on(tern_factory, data_dir)
    # A message before the fault: delivered as usual.
    with t.smtp(ehlo=True) as c:
        assert transaction(c, make_message("before")).code == 250
    t.wait_messages(BOB, 1)
    poll(lambda: spool_messages(t) == [], 10 * SLOW, what="an empty spool")

    remount(spool, readonly=True)
    try:
        with t.smtp(ehlo=True) as c:
            r = transaction(c, make_message("while read-only %s" % unique_id()))
            assert r.code // 100 == 4, r
            c.expect("NOOP", 250)
            time.sleep(0.5)
            assert len(t.messages(BOB)) == 1
    finally:
        remount(spool, readonly=False)
    subject = "after %s" % unique_id()
    with t.smtp(ehlo=True) as c:
        assert transaction(c, make_message(subject)).code == 250
    got = t.wait_messages(BOB, 2)
    assert any(("Subject: %s" % subject).encode() in open(p, "rb").read() for p in got)
    assert spool_tmp(t) == []


# ---- DNS ----


def test_dns_server_down_defers_not_bounces(relay):
    dead = free_port()  # nothing listens there, on UDP or TCP
    t = relay(dns_server="127.0.0.1:%d" % dead, retry_intervals="1h")
    qid = send(t, ["anna@sink.test"], make_message("dns server down", sender=SENDER))
    line = deferred_line(t, qid, timeout=60 * SLOW)
    assert "DNS" in line, line
    assert "451 4.4.3" in line, line
    time.sleep(1)
    assert bounces(t) == []
    assert any(l.startswith(qid) for l in queue_lines(t))


# ---- the remote MX ----


def test_silent_mx_times_out_defers_and_ternd_keeps_serving(relay, bad_peers, remote_port):
    """The peer accepts and never answers.  With a short relay_timeout_command
    the client stops waiting for the greeting: the delivery is deferred with a
    4xx that names the wait, nothing bounces, the message stays queued; and
    while the connection hangs ternd goes on receiving and delivering.  (With
    the default, RFC 5321 4.5.3.2's five minutes, no deferral would come
    within deferred_line's wait.)"""
    peer = bad_peers(SCRIPT_ADDR, remote_port, "silent")
    t = relay(retry_intervals="1h", relay_timeout_command="%ds" % (3 * SLOW))
    qid = send(t, ["who@script.test"], make_message("to a silent mx", sender=SENDER))
    peer.wait_connections(1)
    assert bounces(t) == []
    send(t, [SENDER], make_message("local while hanging", sender=SENDER))
    got = t.wait_messages(SENDER, 1)
    assert len(got) == 1 and b"local while hanging" in open(got[0], "rb").read()
    line = deferred_line(t, qid)
    assert 'last="4' in line and "timeout waiting for the greeting" in line, line
    # Deferred, not bounced: the one message SENDER has is the local one.
    time.sleep(1)
    assert len(bounces(t)) == 1
    assert any(l.startswith(qid) for l in queue_lines(t))
    t.ctl_ok("queue", "delete", qid)


@pytest.mark.parametrize("mode", ["close-after-rcpt", "close-in-data"])
def test_mx_closing_mid_transaction_defers_then_delivers(relay, bad_peers, remote_port, mode):
    peer = bad_peers(SCRIPT_ADDR, remote_port, mode, bad=2)
    t = relay(retry_intervals="2s")
    body = "".join("line %04d of the message\n" % i for i in range(200))
    subject = "mid-transaction %s" % unique_id()
    qid = send(t, ["who@script.test"], make_message(subject, body=body, sender=SENDER))
    line = deferred_line(t, qid)
    assert line.startswith(qid + " ") and 'last="4' in line, line
    got = peer.wait_delivered(1, timeout=30 * SLOW)
    assert ("Subject: %s" % subject).encode() in got[0]
    assert got[0].endswith(b"line 0199 of the message\r\n")
    wait_queue_empty(t)
    assert peer.connections >= 3
    assert len(peer.delivered) == 1
    assert bounces(t) == []


def test_mx_with_10mb_reply_line_bounded_and_deferred(relay, bad_peers, remote_port):
    peer = bad_peers(SCRIPT_ADDR, remote_port, "huge-greeting")
    t = relay(retry_intervals="1h")
    hwm_before = int(proc_status(t.pid)["VmHWM"].split()[0])
    qid = send(t, ["who@script.test"], make_message("huge reply", sender=SENDER))
    line = deferred_line(t, qid, timeout=60 * SLOW)
    assert line.startswith(qid + " ") and 'last="4' in line and "too long" in line, line
    assert peer.connections >= 1
    hwm_after = int(proc_status(t.pid)["VmHWM"].split()[0])
    # The line is 10 MB; a bounded reader never holds more than a fraction.
    assert hwm_after - hwm_before < 4 * 1024, (hwm_before, hwm_after)
    assert bounces(t) == []
    # Still serving.
    send(t, [SENDER], make_message("after the huge line", sender=SENDER))
    got = t.wait_messages(SENDER, 1)
    assert b"after the huge line" in open(got[0], "rb").read()
    t.ctl_ok("queue", "delete", qid)
