"""test_soak.py - load without loss: many senders, receivers that fail.

For TERN_SOAK_SECONDS (default 120) SENDERS threads send mail through
ternd's SMTP listener with smtplib: to local mailboxes and to three remote
domains, one to five recipients a message, some reusing their connection,
some hanging up in the middle of the data.  The remote domains are served by
ChaosMX receivers that decide by a hash of each recipient address: accept,
refuse for now (450, then accept), refuse for good (550), or drop the
connection on the first try (before DATA, in the middle of the data, or
after the final dot without a reply), then accept.  ternd retries every
second.

When the senders stop and the queue has drained:
  - every message that got its 250 is in each local recipient's Maildir
    exactly once, and every remote recipient that accepts took it, with a
    250, exactly once (extra unacknowledged copies come only from the
    connections dropped after the final dot, and are counted);
  - every 550 recipient is named in exactly one bounce to the sender, and
    nothing else bounced;
  - a message whose sender hung up before the end of its data is nowhere;
  - ternd's resident memory after the run is within RSS_GROWTH_KIB of what
    it was after the warm-up.
Runs once, on the plain build: under ASan the allocator's quarantine makes
resident memory say nothing about leaks (LeakSanitizer covers those there).
"""
import os
import random
import smtplib
import socket
import socketserver
import threading
import time
import zlib

import pytest

from helpers import ASAN, SLOW, make_message, parse, rss_kib, unique_id
from relay_helpers import (IMPLICIT_ADDR, SCRIPT_ADDR, SINK_ADDR, report_parts,
                           wait_queue_empty)
from relay_helpers import dns, relay, remote_port  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.soak,
              pytest.mark.skipif(ASAN, reason="the soak runs once, on the plain build")]

SECONDS = int(os.environ.get("TERN_SOAK_SECONDS", "120"))
# Messages a second from each sender: together a load the relay keeps up
# with, so the queue stays short and memory has a steady state to measure.
# 0 sends as fast as possible (the queue then grows for as long as it runs).
RATE = float(os.environ.get("TERN_SOAK_RATE", "4"))
WARMUP = min(20, SECONDS // 4)  # seconds before the memory baseline is taken
SENDERS = 24
LOCAL_USERS = ["rcpt%d@tern.test" % i for i in range(8)]
SENDER_USERS = ["sender%d@tern.test" % i for i in range(4)]
REMOTE = {"script.test": SCRIPT_ADDR, "implicit.test": IMPLICIT_ADDR, "sink.test": SINK_ADDR}
# Resident memory may grow by this much from the end of the warm-up to the
# end of the run.  The paced load keeps the queue short, so the warm-up
# reaches the working set; after the queue has drained ternd holds no
# per-message state, and what may still grow is allocator fragmentation,
# the relay's and libevent's buffers and SQLite's page cache of the event
# log (2 MiB at most per connection): 0.1 to 1 MiB in the default run.  A
# leak of 400 bytes per message over its ~11,000 messages is more than the
# bound.
RSS_GROWTH_KIB = 4 * 1024


def fate(address):
    """What the receivers do with ADDRESS: ok, defer (450 once), refuse
    (550), or drop the connection on its first try at RCPT, in DATA or
    after the final dot."""
    h = zlib.crc32(address.encode()) % 100
    if h < 55:
        return "ok"
    if h < 70:
        return "defer"
    if h < 82:
        return "refuse"
    return ("drop-rcpt", "drop-data", "drop-dot")[h % 3]


class ChaosMX:
    """An SMTP receiver on ADDR:PORT acting out each recipient's fate.
    copies[(message-id, rcpt)] = [acknowledged, unacknowledged]."""

    def __init__(self, addr, port):
        self.lock = threading.Lock()
        self.tries = {}  # address -> RCPTs seen
        self.copies = {}
        self.refused = set()  # (message-id or None, address) given a 550
        self.drops = 0
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 60

            def handle(self):
                try:
                    outer._converse(self.rfile, self.wfile)
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server((addr, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _dropped(self):
        with self.lock:
            self.drops += 1

    def _first_try(self, address):
        with self.lock:
            n = self.tries.get(address, 0)
            self.tries[address] = n + 1
        return n == 0

    def _converse(self, rf, wf):
        def say(line):
            wf.write(line.encode() + b"\r\n")
            wf.flush()

        say("220 mx.chaos.test ESMTP")
        rcpts, drop = [], None
        while True:
            line = rf.readline(4096)
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                say("250-mx.chaos.test\r\n250-PIPELINING\r\n250 8BITMIME")
            elif verb == b"MAIL":
                rcpts, drop = [], None
                say("250 2.1.0 Ok")
            elif verb == b"RCPT":
                address = line[8:].split(b">", 1)[0].lstrip(b"<").decode().lower()
                f, first = fate(address), self._first_try(address)
                if f == "drop-rcpt" and first:
                    self._dropped()
                    return
                if f == "refuse":
                    say("550 5.1.1 <%s>: no such user" % address)
                elif f == "defer" and first:
                    say("450 4.2.1 <%s>: try again later" % address)
                else:
                    if f in ("drop-data", "drop-dot") and first:
                        drop = drop or f
                    rcpts.append(address)
                    say("250 2.1.5 Ok")
            elif verb == b"DATA":
                if not rcpts:
                    say("554 5.5.1 No valid recipients")
                    continue
                say("354 go ahead")
                if not self._data(rf, rcpts, drop, say):
                    return
            elif verb in (b"RSET", b"NOOP"):
                rcpts, drop = [], None
                say("250 2.0.0 Ok")
            elif verb == b"QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("502 5.5.2 Command not recognized")

    def _data(self, rf, rcpts, drop, say):
        """The message after 354; False when the connection is dropped."""
        msgid, lines = None, 0
        while True:
            line = rf.readline(1 << 20)
            if not line:
                return False
            if line == b".\r\n":
                break
            lines += 1
            if drop == "drop-data" and lines == 3:
                self._dropped()
                return False
            if msgid is None and line[:11].lower() == b"message-id:":
                msgid = line[11:].strip().decode()
        acked = drop != "drop-dot"
        with self.lock:
            for r in rcpts:
                self.copies.setdefault((msgid, r), [0, 0])[0 if acked else 1] += 1
        if not acked:
            self._dropped()
            return False
        say("250 2.0.0 Ok: queued")
        return True


class Ledger:
    """What the senders did: message-id -> (sender, [recipients]) for every
    message that got its 250, and the message-ids of those abandoned."""

    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = {}
        self.abandoned = set()
        self.unknown = set()  # the connection broke before the answer to "."

    def add(self, msgid, sender, rcpts):
        with self.lock:
            self.accepted[msgid] = (sender, rcpts)


def recipients_for(rng, n):
    out = set()
    while len(out) < n:
        if rng.random() < 0.35:
            out.add(rng.choice(LOCAL_USERS))
        else:
            out.add("u%d@%s" % (rng.randrange(4000), rng.choice(sorted(REMOTE))))
    return sorted(out)


def abandon(port, sender, rcpts, message):
    """A transaction whose client hangs up half-way through the data."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")

        def cmd(line, code):
            s.sendall(line.encode() + b"\r\n")
            reply = f.readline()
            while reply[3:4] == b"-":
                reply = f.readline()
            assert reply[:3] == str(code).encode(), (line, reply)

        assert f.readline().startswith(b"220")
        cmd("EHLO abandoner.example", 250)
        cmd("MAIL FROM:<%s>" % sender, 250)
        for r in rcpts:
            cmd("RCPT TO:<%s>" % r, 250)
        cmd("DATA", 354)
        s.sendall(message[: len(message) // 2])


def sender(port, k, deadline, ledger):
    """Sender K: messages until DEADLINE, at RATE a second, recorded in
    LEDGER; random but the same for each K from run to run."""
    rng = random.Random(k)
    reuse = k % 3 != 0  # a third of the senders open a connection per message
    smtp = None
    n = 0
    start = time.monotonic()
    while time.monotonic() < deadline:
        if RATE > 0:
            time.sleep(max(0.0, start + n / RATE - time.monotonic()))
        n += 1
        who = SENDER_USERS[k % len(SENDER_USERS)]
        rcpts = recipients_for(rng, 1 + (rng.random() < 0.4) * rng.randrange(1, 5))
        msgid = "<soak-%d-%d-%s@client.example>" % (k, n, unique_id()[:8])
        body = "".join("line %d of a soak message from sender %d\n" % (i, k)
                       for i in range(rng.randrange(1, 60)))
        message = make_message("soak %d/%d" % (k, n), body=body, sender=who, to=rcpts[0],
                               msgid=msgid)
        if rng.random() < 0.03:
            try:
                abandon(port, who, rcpts, message)
                with ledger.lock:
                    ledger.abandoned.add(msgid)
            except (OSError, AssertionError):
                pass
            continue
        try:
            if smtp is None:
                smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="soak.example",
                                    timeout=60)
            smtp.sendmail(who, rcpts, message)
            ledger.add(msgid, who, rcpts)
        except smtplib.SMTPResponseException:
            # refused whole (e.g. a temporary 4xx): nothing was promised
            smtp = hang_up(smtp)
        except (smtplib.SMTPException, OSError):
            # the answer to "." may have been lost: its fate is unknown
            with ledger.lock:
                ledger.unknown.add(msgid)
            smtp = hang_up(smtp)
        if not reuse:
            smtp = hang_up(smtp, quit=True)
    hang_up(smtp, quit=True)


def hang_up(smtp, quit=False):
    """Close SMTP (QUIT first when asked); None."""
    if smtp is not None:
        try:
            if quit:
                smtp.quit()
            smtp.close()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    return None


def message_ids(t, address):
    out = []
    for raw in t.read_messages(address):
        out.append((parse(raw)["Message-ID"] or "").strip())
    return out


def bounced_pairs(t):
    """(original Message-ID, failed recipient) of every failure report in
    the senders' mailboxes, one per report and recipient."""
    pairs = []
    for who in SENDER_USERS:
        for raw in t.read_messages(who):
            msg, _, rcpts, original = report_parts(raw)
            head = original.get_payload(decode=True).decode("utf-8", "replace")
            mid = [l.split(":", 1)[1].strip() for l in head.splitlines()
                   if l.lower().startswith("message-id:")][0]
            for r in rcpts:
                assert r["action"] == "failed", r
                pairs.append((mid, r["final-recipient"].split("; ", 1)[1].lower()))
    return pairs


def test_soak_every_accepted_message_delivered_or_bounced_once(relay, remote_port):
    mxs = {d: ChaosMX(addr, remote_port) for d, addr in REMOTE.items()}
    try:
        t = relay(retry_intervals="1s", queue_lifetime="1h", log_level="warn",
                  workers="4")
        for u in LOCAL_USERS + SENDER_USERS:
            t.add_user(u)
        run(t, mxs)
    finally:
        for mx in mxs.values():
            mx.stop()


def run(t, mxs):
    ledger = Ledger()
    start = time.monotonic()
    deadline = start + SECONDS
    threads = [threading.Thread(target=sender, args=(t.smtp_port, k, deadline, ledger))
               for k in range(SENDERS)]
    for th in threads:
        th.start()
    time.sleep(WARMUP)
    rss_warm = rss_kib(t.pid)
    for th in threads:
        th.join(SECONDS + 120)
    assert not any(th.is_alive() for th in threads), "a sender hangs"
    sent_for = time.monotonic() - start
    wait_queue_empty(t, timeout=120 * SLOW)
    rss_end = rss_kib(t.pid)

    accepted = ledger.accepted
    local, remote, refused = [], [], []
    for msgid, (who, rcpts) in accepted.items():
        for r in rcpts:
            d = r.split("@", 1)[1]
            if d == "tern.test":
                local.append((msgid, r))
            elif fate(r) == "refuse":
                refused.append((msgid, r))
            else:
                remote.append((msgid, r))

    # Local: every message in each recipient's Maildir exactly once.
    in_box = {}
    for u in LOCAL_USERS:
        for mid in message_ids(t, u):
            in_box[(mid, u)] = in_box.get((mid, u), 0) + 1
    local_set, remote_set, refused_set = set(local), set(remote), set(refused)
    lost_local = [p for p in local if in_box.get(p, 0) == 0]
    twice_local = [p for p, n in in_box.items() if n > 1]
    stray_local = [p for p in in_box if p not in local_set and p[0] not in ledger.unknown]

    # Remote: acknowledged exactly once; unacknowledged copies only after a
    # drop at the final dot.
    copies = {}
    for mx in mxs.values():
        copies.update(mx.copies)
    lost_remote = [p for p in remote if copies.get(p, [0, 0])[0] == 0]
    twice_remote = [p for p in remote if copies.get(p, [0, 0])[0] > 1]
    unacked = sum(c[1] for c in copies.values())
    stray_remote = [p for p in copies if p not in remote_set and p[0] not in ledger.unknown]

    # Bounces: each refused recipient in exactly one report, nothing else.
    pairs = bounced_pairs(t)
    times = {}
    for p in pairs:
        times[p] = times.get(p, 0) + 1
    missing_bounce = [p for p in refused if p not in times]
    twice_bounce = sorted(p for p, n in times.items() if n > 1)
    stray_bounce = [p for p in times if p not in refused_set and p[0] not in ledger.unknown]

    # Abandoned messages are nowhere.
    seen = {mid for mid, _ in in_box} | {mid for mid, _ in copies}
    leaked = ledger.abandoned & seen

    nrcpt = len(local) + len(remote) + len(refused)
    print("\nsoak: %ds, %d senders: %d messages accepted (%d recipients: %d local, %d remote, "
          "%d refused -> bounced), %d abandoned mid-data, %d with the answer lost; "
          "%d connections dropped by the receivers, %d unacknowledged remote copies; "
          "RSS %d KiB after warm-up, %d KiB at the end; lost 0"
          % (sent_for, SENDERS, len(accepted), nrcpt, len(local), len(remote), len(refused),
             len(ledger.abandoned), len(ledger.unknown), sum(mx.drops for mx in mxs.values()),
             unacked, rss_warm, rss_end))
    problems = {
        "lost (local)": lost_local, "delivered twice (local)": twice_local,
        "never sent (local)": stray_local, "lost (remote)": lost_remote,
        "acknowledged twice (remote)": twice_remote, "never sent (remote)": stray_remote,
        "bounce missing": missing_bounce, "bounced twice": twice_bounce,
        "bounced but not refused": stray_bounce, "abandoned but delivered": sorted(leaked),
    }
    bad = {k: v for k, v in problems.items() if v}
    assert not bad, "; ".join("%s: %d, e.g. %s" % (k, len(v), v[:3]) for k, v in bad.items())
    assert len(accepted) > SENDERS, "too few messages to say anything"
    assert rss_end - rss_warm <= RSS_GROWTH_KIB, (
        "ternd grew from %d KiB to %d KiB over %d messages" % (rss_warm, rss_end, len(accepted)))
