"""test_faults_store.py - ternd when its database goes away or is locked,
and when it is killed while it bounces.

Contracts (DESIGN.md: Durability; docs/relay.md: Bounces):
  - the accounts ternd serves are a snapshot in memory: with the database
    removed, mail to existing mailboxes is still accepted and delivered,
    and ternd keeps serving;
  - while another process holds the database's write lock, SMTP goes on
    accepting and delivering; ternctl's change fails after the busy timeout
    with a "database is locked" reason and exit 1, and succeeds once the
    lock is gone;
  - a SIGKILL while bounces are being made loses no bounce and makes none
    twice: after the restart every recipient that was refused with a 5xx
    is named in exactly one bounce in the sender's mailbox, every local
    recipient has the message exactly once, and every remote recipient
    that accepted got it (at least once: a kill between the remote 250 and
    ternd's record of it repeats the delivery, as SMTP allows).
"""
import os
import signal
import sqlite3
import time

from helpers import DELIVERY_TIMEOUT, SLOW, make_message, parse, poll, unique_id
from relay_helpers import SCRIPT_ADDR, SENDER, bounces, report_parts, send, wait_queue_empty
from relay_helpers import dns, receivers, relay, remote_port  # noqa: F401 (fixtures)

BOB = "bob@tern.test"
CAROL = "carol@tern.test"


def subjects(t, address):
    return [parse(raw)["Subject"] for raw in t.read_messages(address)]


def deliver_local(t, subject, rcpt=BOB):
    """One message to RCPT over SMTP; it must get its 250."""
    with t.smtp(ehlo=True) as c:
        return c.deliver([rcpt], make_message(subject, to=rcpt))


def wait_subject(t, address, subject, timeout=DELIVERY_TIMEOUT):
    poll(lambda: subject in subjects(t, address), timeout, 0.05,
         what="%r in %s's mailbox" % (subject, address))


# ---- the database ----


def test_database_removed_mail_still_flows_and_ternd_keeps_serving(tern):
    tern.add_user("carol@tern.test")
    db = os.path.join(tern.data_dir, "tern.db")
    assert os.path.exists(db)
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)

    # The accounts ternd serves are in memory: existing mailboxes still
    # receive, unknown ones are still refused.
    for rcpt in (BOB, "carol@tern.test"):
        subject = "after the database went %s" % unique_id()
        deliver_local(tern, subject, rcpt)
        wait_subject(tern, rcpt, subject)
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<nobody@tern.test>", 550, "5.1.1")
        c.expect("RCPT TO:<someone@elsewhere.example>", 554, "5.7.1")

    # A reload (SIGHUP) must not take the accounts away: with the database
    # gone it keeps the snapshot it has rather than serving nothing.
    reloads = tern.log().count("accounts reload")
    tern.send_signal(signal.SIGHUP)
    poll(lambda: tern.log().count("accounts reload") > reloads, 10 * SLOW, 0.05,
         what="the accounts reload after SIGHUP")
    subject = "after the reload %s" % unique_id()
    deliver_local(tern, subject)
    wait_subject(tern, BOB, subject)
    assert tern.running()

    # ternctl either says the database is missing or starts an empty one:
    # either way it lists nothing and deletes nothing.
    cp = tern.ctl("domain", "list")
    if cp.returncode == 0:
        assert "tern.test" not in cp.stdout, cp.stdout
    else:
        assert cp.returncode == 1 and "tern.db" in cp.stderr, cp
    cp = tern.ctl("user", "del", BOB)
    assert cp.returncode == 1 and cp.stderr.strip(), cp
    assert tern.running()

    # Building it up again works and reaches the running daemon, which now
    # serves what the new database holds.
    if not os.path.exists(db):
        assert tern.stop() == 0
        tern.start()
    tern.add_domain("tern.test")
    tern.add_user("dave@tern.test")
    subject = "to a user of the new database %s" % unique_id()
    deliver_local(tern, subject, "dave@tern.test")
    wait_subject(tern, "dave@tern.test", subject)
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<carol@tern.test>", 550, "5.1.1")


def hold_write_lock(db):
    """A connection of our own holding the database's write lock (a
    BEGIN EXCLUSIVE transaction, in WAL mode: readers still read)."""
    con = sqlite3.connect(db, timeout=10, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    # A write inside the transaction, so that the lock is the writer's.
    con.execute("CREATE TABLE IF NOT EXISTS lock_probe (x)")
    return con


def test_database_locked_mail_flows_and_ternctl_fails_cleanly(tern):
    db = os.path.join(tern.data_dir, "tern.db")
    con = hold_write_lock(db)
    try:
        # SMTP accepts and delivers while the lock is held.
        subject = "while the database is locked %s" % unique_id()
        deliver_local(tern, subject)
        wait_subject(tern, BOB, subject)

        # A change waits for the busy timeout, then fails with the reason.
        cp = tern.ctl("user", "add", "erin@tern.test", input="secret-erin\n")
        assert cp.returncode == 1, cp
        assert "locked" in cp.stderr.lower() or "busy" in cp.stderr.lower(), cp.stderr
        # Reads go on in WAL mode.
        assert BOB in tern.ctl_ok("user", "list")

        subject = "still while locked %s" % unique_id()
        deliver_local(tern, subject)
        wait_subject(tern, BOB, subject)
        assert tern.running()
    finally:
        con.rollback()
        con.close()

    # The refused change left nothing behind; made again it works at once.
    assert "erin@tern.test" not in tern.ctl_ok("user", "list")
    tern.ctl_ok("user", "add", "erin@tern.test", input="secret-erin\n")
    subject = "to the user added after the lock %s" % unique_id()
    deliver_local(tern, subject, "erin@tern.test")
    wait_subject(tern, "erin@tern.test", subject)


# ---- SIGKILL while bouncing ----

# Seconds from the burst of remote replies to the kill, one round each:
# the reports are made and committed, and the originals' records written,
# within this spread.
ROUNDS = [0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.4]
PER_ROUND = 12


def refuse_gone(address, n):
    if address.startswith("gone"):
        return "550 5.1.1 <%s>: Recipient address rejected: no such user" % address
    return "250 2.1.5 Ok"


def reported(t):
    """(original queue id, failed recipient) of every failure report in the
    sender's mailbox, one entry per report and recipient, and the reports'
    Message-IDs."""
    pairs, ids = [], []
    for raw in bounces(t):
        msg, per_msg, rcpts, _ = report_parts(raw)
        ids.append(msg["Message-ID"])
        for r in rcpts:
            if r["action"] == "failed":
                pairs.append((per_msg["x-tern-queue-id"], r["final-recipient"].split("; ", 1)[1]))
    return pairs, ids


def test_sigkill_while_bouncing_loses_none_and_doubles_none(relay, receivers, remote_port):
    rx = receivers.scripted(SCRIPT_ADDR, remote_port, rcpt=refuse_gone)
    t = relay(retry_intervals="1s")
    t.add_user(CAROL)
    sent = {}  # queue id -> (subject, [failed recipients], [accepting recipients])
    for rnd, delay in enumerate(ROUNDS):
        before = len(rx.transactions())
        rx.hold()  # the replies to "." wait: the results come in a burst
        for i in range(PER_ROUND):
            tag = "r%dm%d" % (rnd, i)
            failed = ["gone-%s@script.test" % tag] + (["gone2-%s@script.test" % tag] if i % 3 == 0
                                                      else [])
            good = ["here-%s@script.test" % tag, CAROL]
            subject = "bounce under kill %s %s" % (tag, unique_id())
            qid = send(t, failed + good, make_message(subject, sender=SENDER))
            sent[qid] = (subject, failed, good)
        # Four transactions (the most ternd opens to one domain) wait at
        # their ".": let them all answer, then kill while ternd records the
        # results, makes the reports and goes on with the next ones.
        poll(lambda: sum(x.data is not None for x in rx.transactions()[before:]) >= 4,
             10 * SLOW, 0.01, what="four transactions of round %d at the receiver" % rnd)
        rx.release()
        time.sleep(delay)
        t.kill()
        t.start()
        wait_queue_empty(t, timeout=30 * SLOW)

    # Every failed recipient is named in exactly one report.
    want = sorted((qid, a) for qid, (_, failed, _) in sent.items() for a in failed)
    got, ids = reported(t)
    missing = sorted(set(want) - set(got))
    doubled = sorted(p for p in set(got) if got.count(p) > 1)
    stray = sorted(set(got) - set(want))
    assert not missing and not doubled and not stray, (
        "%d failed recipients: %d missing from the reports, %d reported more than once "
        "(%d reports delivered twice, same Message-ID), %d stray: missing=%s doubled=%s" % (
            len(want), len(missing), len(doubled), len(ids) - len(set(ids)), len(stray),
            missing[:5], doubled[:5]))
    assert len(got) == len(want)

    # The local recipient has every message exactly once.
    in_box = {}
    for raw in t.read_messages(CAROL):
        subject = parse(raw)["Subject"]
        in_box[subject] = in_box.get(subject, 0) + 1
    lost = [s for s, _, _ in sent.values() if s not in in_box]
    twice_local = sorted(s for s, n in in_box.items() if n > 1)
    assert not lost and not twice_local, "%d of %d messages missing from %s, %d twice: %s" % (
        len(lost), len(sent), CAROL, len(twice_local), (lost + twice_local)[:5])

    # Every remote accepting recipient got its message (at least once: a kill
    # after the receiver's 250 and before ternd wrote that down repeats the
    # delivery, which is the contract of SMTP and of tern).
    copies = {}
    for x in rx.delivered():
        subject = parse(x.data)["Subject"]
        copies[subject] = copies.get(subject, 0) + 1
    lost = [s for s, _, _ in sent.values() if copies.get(s, 0) == 0]
    assert not lost, "%d of %d messages never reached their remote recipient: %s" % (
        len(lost), len(sent), lost[:5])
    twice = sum(1 for n in copies.values() if n > 1)
    print("bounce kill: %d messages, %d refused recipients, %d reports, %d kills, "
          "%d remote copies sent twice, lost 0" % (len(sent), len(want), len(ids), len(ROUNDS),
                                                   twice))
