"""test_durability.py - a 250 after the data is a promise that survives kill -9.

Contract (DESIGN.md, Durability): the 250 after DATA means the message and
its envelope are fsynced; after a SIGKILL and a restart with the same
data_dir every accepted message is delivered (at least once).  Messages
that never got their 250 may or may not appear.
"""
import socket
import smtplib
import threading

from helpers import DELIVERY_TIMEOUT, SLOW, make_message, parse, poll

THREADS = 8
PER_THREAD = 25


def message_ids(tern, address):
    ids = set()
    for raw in tern.read_messages(address):
        mid = parse(raw)["Message-ID"]
        if mid:
            ids.add(mid.strip())
    return ids


def sender(port, thread, acked, lock, stop):
    """Send PER_THREAD messages, reconnecting after errors, recording the
    Message-ID of each one that got its 250."""
    s = None
    for i in range(PER_THREAD):
        if stop.is_set():
            break
        msgid = "<burst-%d-%d@client.example>" % (thread, i)
        message = make_message("burst %d/%d" % (thread, i), msgid=msgid)
        try:
            if s is None:
                s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=10)
                s.ehlo()
            if s.mail("alice@example.org")[0] != 250 or s.rcpt("bob@tern.test")[0] != 250:
                continue
            code, _ = s.data(message)
            if code == 250:
                with lock:
                    acked.add(msgid)
        except (smtplib.SMTPException, OSError, socket.timeout):
            # the daemon was killed: this message's fate is unknown
            s = None
            if stop.is_set():
                break
    if s is not None:
        try:
            s.close()
        except OSError:
            pass


def test_messages_acknowledged_before_sigkill_survive_restart(tern):
    acked, lock, stop = set(), threading.Lock(), threading.Event()
    threads = [threading.Thread(target=sender, args=(tern.smtp_port, n, acked, lock, stop))
               for n in range(THREADS)]
    for th in threads:
        th.start()
    try:
        # kill in the middle of the burst, with sessions in every state
        poll(lambda: len(acked) >= THREADS * PER_THREAD // 3, 60 * SLOW, 0.005,
             what="a third of the burst acknowledged")
        tern.kill()
        with lock:
            promised = set(acked)
    finally:
        stop.set()
        for th in threads:
            th.join(60)
    assert promised, "nothing was acknowledged before the kill"

    tern.restart()

    def all_there():
        missing = promised - message_ids(tern, "bob@tern.test")
        return not missing

    try:
        poll(all_there, DELIVERY_TIMEOUT + 10, 0.1, what="every acknowledged message")
    except AssertionError:
        missing = sorted(promised - message_ids(tern, "bob@tern.test"))
        raise AssertionError("%d of %d acknowledged messages lost after SIGKILL: %s"
                             % (len(missing), len(promised), missing[:20]))
    # every stored message is whole and one the clients sent: a crash leaves
    # no torn file in new/
    for raw in tern.read_messages("bob@tern.test"):
        assert parse(raw)["Message-ID"].startswith("<burst-"), raw[:300]
        assert raw.endswith(b"\n\nHello.\n"), raw[-200:]


def test_message_acknowledged_just_before_sigkill_is_delivered(tern):
    with tern.smtp(ehlo=True) as c:
        c.deliver(["bob@tern.test"], make_message("last words", msgid="<last@client.example>"))
        tern.kill()
    tern.restart()
    poll(lambda: "<last@client.example>" in message_ids(tern, "bob@tern.test"),
         DELIVERY_TIMEOUT, 0.1, what="the acknowledged message after restart")
