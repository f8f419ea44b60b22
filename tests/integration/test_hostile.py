"""test_hostile.py - hostile SMTP clients, as one table.

Each row brings a session to a state (greeted, EHLO, MAIL, RCPT or DATA),
sends a bad input, checks every reply it gets, in order, and then the
invariants all rows share: the session is still in sync (a NOOP gets
exactly one 250, and the next command its own reply) or was closed the
way the row expects; the daemon still delivers a normal message on a new
connection; and bob@tern.test holds no message a refused input would have
stored (or exactly those the row expects), with nothing left in
Maildir/tmp.

Rows that need no configuration of their own run one after the other
against one shared daemon, so the last test also shows the cumulative
effect: after the whole table it still delivers, bob holds exactly the
messages the rows accepted, no descriptor or per-address connection slot
has leaked, and (its fixture's teardown) it exits cleanly on SIGTERM with
no sanitizer report.  Rows with a tern_config of their own, and the ones
expected to fail, get a fresh daemon from conftest's `tern` fixture.

Expected codes come from RFC 5321 (2.3.8 line ends, 3.3 sequence, 4.1
syntax, 4.2 codes, 4.5.3 limits), RFC 3463 (enhanced codes), RFC 1870
(SIZE), RFC 2920 (PIPELINING), RFC 3030 (BDAT), RFC 3207 (STARTTLS),
RFC 3461 (DSN parameters), RFC 4954 (AUTH), RFC 6531 (SMTPUTF8) and
DESIGN.md's reply contract - not from what ternd answers today; where
ternd disagrees, the row keeps the contract and is marked
xfail(strict=True).  Where the RFCs leave a choice (500 or 501 for a
malformed line, 503 or 554 for DATA without recipients, a refusal at the
bad BDAT chunk or at the last one), a row accepts each allowed answer.

Elsewhere: test_protocol.py checks single bad commands (unknown verbs, 501
syntax, 503 sequence, lines of 600 and 20000 octets, max_errors, timeouts,
connection limits, VRFY), test_data_safety.py bare CR/LF and NUL in a DATA
body and six smuggling separators in DATA, each followed by a good message
in the same session, and test_abuse.py a slowloris of unfinished command
lines.  The table takes their pipelined, boundary and BDAT variants; it
repeats the DATA smuggling separators only to list every variant in one
place (with the seventh, LF.CR).
"""
import os
import socket
import tempfile
import threading
import time

import pytest

from conftest import Tern
from helpers import SLOW, check, data_block, make_message, poll
from hostile_helpers import (BOB, CLOSED, CLOSED_421, CLOSED_OR_SYNC, NONE, SENDER, SA, Do, Q,
                             R, Row, S, bdat, check_serving_and_stored, connect, domain_of, flood,
                             garbage, kib, message, open_fds, read_replies, reset_peak_rss,
                             run_row, runs, send_quietly, starttls, tls_context, transaction)

KB = 1024
MB = 1024 * 1024
SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@tern.test>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nevil\r\n")
# every way to fake the end of data with a bare CR or LF (RFC 5321 4.1.1.4
# and 2.3.8; SMTP smuggling)
SEPARATORS = [b"\n.\r\n", b"\r.\r", b"\n.\n", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n", b"\n.\r"]
SYNTAX = (500, 501)  # RFC 5321 4.2.2/4.2.4: malformed line or malformed arguments


def sep_id(sep):
    return sep.decode().replace("\r", "CR").replace("\n", "LF")


# rows that need more than sending bytes


def data_smuggle(sep):
    """The carrier's body holds a fake end and a whole second transaction;
    the only end is the genuine CRLF.CRLF at the very end."""
    return b"Subject: carrier\r\n\r\nbody" + sep + SMUGGLED + b".\r\n"


def bdat_smuggle(sep):
    return bdat(b"Subject: carrier\r\n\r\nbody" + sep + SMUGGLED)


def received_headers(n):
    return ["Received: from h%d.example.net by h%d.example.net; Mon, 01 Jan 2024 12:00:00 +0000"
            % (i, i + 1) for i in range(n)]


def looping_message():
    return message("looping", extra_headers=received_headers(1000))


def long_header_message():
    return b"Subject: " + b"h" * MB + b"\r\n\r\nbody\r\n"


def huge_bdat():
    body = b"Subject: huge\r\n\r\n" + (b"y" * 78 + b"\r\n") * (10 * MB // 80)
    return bdat(body)


def vrfy_identical(verb):
    """VRFY/EXPN of a user and of a non-user get the same reply (no
    harvesting): the same code and enhanced code, and the same text once
    the names are taken out; and neither is the 250 that would confirm."""
    def run(ctx):
        known = ctx.c.cmd("%s bob@tern.test" % verb)
        unknown = ctx.c.cmd("%s nosuch@tern.test" % verb)
        for r in (known, unknown):
            assert r.well_formed and r.code in (252, 502, 550, 551, 553), r
        assert (known.code, known.enhanced) == (unknown.code, unknown.enhanced), \
            "%s tells users apart:\n%s\n%s" % (verb, known, unknown)
        assert known.text.replace("bob", "X") == unknown.text.replace("nosuch", "X"), \
            "%s texts differ:\n%s\n%s" % (verb, known, unknown)
        if verb == "VRFY":
            check(known, 252, what="VRFY answers 252 (RFC 5321 3.5.3)")
    return run


def quit_with_garbage(ctx):
    """QUIT takes no argument (RFC 5321 4.1.1.10): 221 and close, or 501 and
    the session goes on - never anything else."""
    r = ctx.c.cmd("QUIT now please, and then some")
    if r.code == 221:
        assert ctx.c.wait_closed(5 * SLOW), "221 without closing"
        ctx.c.close()
        ctx.c = None
        return
    check(r, 501, what="QUIT with trailing garbage")


def quit_then_more(ctx):
    """Commands pipelined after QUIT are never run: 221, close, nothing else."""
    c = ctx.c
    c.send(b"QUIT\r\nNOOP\r\nMAIL FROM:<%s>\r\nHELP\r\n" % SENDER.encode())
    check(c.reply(), 221, what="QUIT")
    assert c.wait_closed(5 * SLOW), "QUIT did not close"
    assert c.buf == b"", "replies after the 221: %r" % c.buf


def rcpt_flood(ctx):
    """10,000 RCPTs in one write (RFC 2920 pipelining): the first
    max_recipients get 250, the rest 452 4.5.3 (RFC 5321 4.5.3.1.10,
    DESIGN.md), in order, and the session lives on."""
    limit = 1000  # the default of max_recipients
    lines = b"".join(b"RCPT TO:<bob+r%d@tern.test>\r\n" % i for i in range(10000))
    replies = flood(ctx.c, lines, 10000)
    got = runs(replies)
    assert got == [(limit, 250, "2.1.5"), (10000 - limit, 452, "4.5.3")], got


def noop_flood_memory(ctx):
    """5,000 NOOPs in one write, read only afterwards: 5,000 replies of 250
    in order, and the daemon's resident memory stays within a bound (a
    robustness bound with generous slack, not a measurement)."""
    pid = ctx.tern.pid
    peak_known = reset_peak_rss(pid)
    before = kib(pid, "VmRSS")
    ctx.c.send(b"NOOP\r\n" * 5000)
    time.sleep(0.2)  # let the server run ahead of a client that does not read
    replies = read_replies(ctx.c, 5000)
    assert runs(replies) == [(5000, 250, "2.0.0")], runs(replies)
    after = kib(pid, "VmHWM" if peak_known else "VmRSS")
    slack = (96 if SLOW > 1 else 24) * KB
    assert after - before < slack, "RSS grew from %d to %d KiB over 5,000 NOOPs" % (before, after)


def ehlo_flood(ctx):
    """2,000 EHLOs in one write: each answer is ten lines, so the replies
    outgrow the input 8 times over; all come, whole and in order."""
    replies = flood(ctx.c, b"EHLO client.example\r\n" * 2000, 2000)
    bad = [i for i, r in enumerate(replies) if r.code != 250 or len(r.lines) < 5]
    assert not bad, "reply %d is not an EHLO answer:\n%s" % (bad[0], replies[bad[0]])


def never_reads(ctx):
    """A client that pipelines NOOPs and never reads a reply: the server
    must stop reading once its replies back up (bounded output buffer)
    instead of buffering without limit.  Seen from the client: its writes
    stall long before the 48 MB it offers are taken, and the daemon's
    memory stays within the same bound as above."""
    pid = ctx.tern.pid
    peak_known = reset_peak_rss(pid)
    before = kib(pid, "VmRSS")
    sock = socket_small_buffers(ctx.tern.smtp_port)
    try:
        payload = memoryview(b"NOOP\r\n" * (8 * MB))
        sock.setblocking(False)
        sent, last_progress, start = 0, time.monotonic(), time.monotonic()
        while time.monotonic() - last_progress < 0.5 and time.monotonic() - start < 20 * SLOW:
            try:
                n = sock.send(payload[sent:sent + 256 * KB])
            except BlockingIOError:
                time.sleep(0.01)
                continue
            sent += n
            last_progress = time.monotonic()
        assert time.monotonic() - last_progress >= 0.5, \
            "the server kept reading from a client that takes no replies: %d MB" % (sent // MB)
        assert sent < 24 * MB, "%d MB taken from a client that reads nothing" % (sent // MB)
        after = kib(pid, "VmHWM" if peak_known else "VmRSS")
        slack = (96 if SLOW > 1 else 24) * KB
        assert after - before < slack, "RSS grew from %d to %d KiB" % (before, after)
    finally:
        sock.close()


def socket_small_buffers(port):
    """A greeted, EHLOed raw socket with small kernel buffers (set before
    connect, so the window is small from the start)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * KB)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * KB)
    sock.settimeout(10 * SLOW)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"EHLO client.example\r\n")
    got = b""
    while b"250 " not in got:
        chunk = sock.recv(4096)
        assert chunk, "closed before the EHLO reply"
        got += chunk
    return sock


def starttls_twice(ctx):
    starttls(ctx)
    ctx.c.expect("EHLO client.example", 250)
    ctx.c.expect("STARTTLS", 503, "5.5.1")


def starttls_injection(ctx):
    """RFC 3207 5: a command sent with STARTTLS, before the handshake, is
    not run over TLS.  HELP is injected: if it were run, its 214 would come
    where the EHLO's 250 is expected."""
    c = ctx.c
    c.send(b"STARTTLS\r\nHELP\r\n")
    check(c.reply(), 220, what="STARTTLS")
    assert c.buf == b"", "replies in plaintext after the 220: %r" % c.buf
    c.sock = tls_context().wrap_socket(c.sock)
    r = c.expect("EHLO client.example", 250)
    assert len(r.lines) > 1, "not an EHLO answer (the injected HELP's?):\n%s" % r


def tls_handshake_with(data):
    """After STARTTLS's 220, DATA instead of a TLS handshake: the handshake
    fails and the connection is closed (no session goes on in plaintext,
    nor hangs); the marker after the row shows the daemon still serves."""
    def run(ctx):
        check(ctx.c.cmd("STARTTLS"), 220, what="STARTTLS")
        send_quietly(ctx.c, data)
    return run


def bare_lf_flood(ctx):
    """Each bare-LF line is an error; at max_errors (the directive; 5 here)
    the server answers 421 and closes."""
    ctx.c.send(b"NOOP\n" * 5)
    for i in range(5):
        check(ctx.c.reply(), 500, what="bare-LF line %d" % (i + 1))


def slowloris(ctx):
    """Six connections from 127.0.0.1 (max_connections_per_ip 6) kept alive
    a byte a second: two silent after the greeting, two trickling a command
    line, two trickling a message body.  The seventh from 127.0.0.1 is
    refused 421 4.7.0; a client from 127.0.0.2 gets a full transaction."""
    t = ctx.tern
    slow = []
    stop = threading.Event()
    try:
        for i in range(6):
            c = connect(t)
            slow.append(c)
            c.greet()
            if i in (2, 3):
                c.send(b"EHLO sl")
            if i in (4, 5):
                c.ehlo()
                c.begin(SENDER, [BOB])
                c.send(b"Subject: slow\r\n\r\n")

        def trickle():
            while not stop.wait(1.0):
                for c in slow[2:]:
                    send_quietly(c, b"o")

        th = threading.Thread(target=trickle)
        th.start()
        try:
            time.sleep(2.2)  # two rounds of trickling
            with connect(t) as extra:
                check(extra.reply(), 421, "4.7.0", what="a 7th connection from 127.0.0.1")
            with connect(t, source="127.0.0.2") as c:
                c.greet()
                c.ehlo()
                c.deliver([BOB], make_message("served during the slowloris"))
                c.expect("QUIT", 221)
            for c in slow[2:]:
                assert not c.pending(0.01), "a trickling connection got a reply: %r" % c.buf
        finally:
            stop.set()
            th.join()
    finally:
        for c in slow:
            c.close()
    wait_admitted(t)


def wait_admitted(t):
    """Poll until a new client from 127.0.0.1 is greeted with 220 (the
    daemon has seen the closes and freed the slots)."""
    def admitted():
        with connect(t) as c:
            return c.reply().code == 220

    poll(admitted, 10 * SLOW, 0.1, what="a free connection slot")


# the table

ROWS = [
    # bare CR and LF in command lines (RFC 5321 2.3.8: lines end with CRLF)
    Row("cmd-bare-lf", "ehlo", [S(b"NOOP\n", R(500))]),
    # (the LF ends nothing: either the part before it is a bad line of its
    # own, or the whole is one bad line - never two good commands)
    Row("cmd-bare-lf-then-command", "ehlo",
        [SA(b"MAIL FROM:<alice@example.org>\nRCPT TO:<bob@tern.test>\r\n",
            [R(500), R(503, "5.5.1")], [R(SYNTAX)])]),
    Row("cmd-bare-cr-inside", "ehlo", [S(b"NO\rOP\r\n", R(500))]),
    Row("cmd-cr-as-line-end", "ehlo", [S(b"NOOP\rRSET\r\n", R(500))]),
    Row("cmd-lf-cr-line-end", "ehlo", [SA(b"NOOP\n\r\n", [R(500), R(500)], [R(SYNTAX)])]),
    Row("empty-line-crlf", "ehlo", [S(b"\r\n", R(500))]),
    Row("empty-line-bare-lf", "ehlo", [S(b"\n", R(500))]),
    Row("blank-line-spaces", "ehlo", [S(b"   \r\n", R(500))]),
    Row("bare-lf-lines-to-max-errors", "ehlo", [Do(bare_lf_flood)], end=CLOSED_421,
        config={"max_errors": 5}),

    # SMTP smuggling in DATA: one reply (5xx), nothing stored, nothing smuggled
    *[Row("data-smuggle-%s" % sep_id(sep), "data", [S(data_smuggle(sep), R(5))])
      for sep in SEPARATORS],
    # ...and the same bytes in a BDAT chunk (RFC 3030: no dots, but a bare
    # CR or LF still refuses the message - DESIGN.md)
    *[Row("bdat-smuggle-%s" % sep_id(sep), "rcpt", [S(bdat_smuggle(sep), R(5))])
      for sep in SEPARATORS],
    Row("bdat-last-chunk-ends-in-cr", "rcpt",
        [S(bdat(b"Subject: cr\r\n\r\nbody\r"), R(5))]),

    # bad bytes in message data, with a good transaction pipelined behind:
    # the refusal does not disturb the next transaction
    Row("data-bare-lf-then-good", "data",
        [S(b"Subject: bad\r\n\r\none\ntwo\r\n.\r\n" + transaction("good after bare LF"),
           R(5), R(250, "2.1.0"), R(250, "2.1.5"), R(354), R(250, "2.0.0"))], stored=1),
    Row("data-bare-cr-then-good", "data",
        [S(b"Subject: bad\r\n\r\none\rtwo\r\n.\r\n" + transaction("good after bare CR"),
           R(5), R(250, "2.1.0"), R(250, "2.1.5"), R(354), R(250, "2.0.0"))], stored=1),
    Row("data-nul-then-good", "data",
        [S(b"Subject: bad\r\n\r\nnul\x00here\r\n.\r\n" + transaction("good after NUL"),
           R(5), R(250, "2.1.0"), R(250, "2.1.5"), R(354), R(250, "2.0.0"))], stored=1),
    Row("bdat-bare-lf", "rcpt", [S(bdat(b"Subject: bad\r\n\r\none\ntwo\r\n"), R(5))]),
    Row("bdat-bare-cr", "rcpt", [S(bdat(b"Subject: bad\r\n\r\none\rtwo\r\n"), R(5))]),
    Row("bdat-nul", "rcpt", [S(bdat(b"Subject: bad\r\n\r\nnul\x00here\r\n"), R(5))]),
    # (RFC 3030 lets the refusal come at the bad chunk - then the rest meets
    # no transaction - or at the last one)
    Row("bdat-bare-lf-in-first-chunk", "rcpt",
        [SA(bdat(b"Subject: bad\n", last=False) + bdat(b"\r\nbody\r\n"),
            [R(5), R(503, "5.5.1")], [R(250), R(5)])]),

    # NUL in command lines (500 5.5.2, as test_data_safety.py pins it)
    Row("nul-in-ehlo", "greet", [S(b"EHLO client\x00.example\r\n", R(500, "5.5.2"))]),
    Row("nul-line", "ehlo", [S(b"\x00\r\n", R(500, "5.5.2"))]),
    Row("nul-in-verb", "ehlo", [S(b"NO\x00OP\r\n", R(500, "5.5.2"))]),
    Row("nul-in-rcpt", "mail", [S(b"RCPT TO:<bob\x00@tern.test>\r\n", R(500, "5.5.2"))]),
    Row("nul-in-parameter", "ehlo",
        [S(b"MAIL FROM:<alice@example.org> ENVID=ab\x00cd\r\n", R(500, "5.5.2"))]),

    # 8-bit bytes in commands without SMTPUTF8 (RFC 5321 2.4: commands are
    # ASCII; RFC 6531 3.3: only paths may carry UTF-8, and only with SMTPUTF8)
    Row("8bit-ehlo", "greet", [S("EHLO cliënt.example\r\n", R(SYNTAX))]),
    Row("8bit-helo", "greet", [S("HELO cliënt.example\r\n", R(SYNTAX))]),
    Row("8bit-noop-argument", "ehlo", [S("NOOP ünïcödé\r\n", R(SYNTAX))]),
    Row("8bit-unknown-verb", "ehlo", [S("FRÖBNICATE now\r\n", R(500))]),
    Row("8bit-latin1-verb", "ehlo", [S(b"N\xd6OP\r\n", R(500))]),
    Row("utf8-sender-without-smtputf8", "ehlo",
        [S("MAIL FROM:<jürgen@example.org>\r\n", R(553, "5.6.7"))]),
    Row("latin1-sender-without-smtputf8", "ehlo",
        [S(b"MAIL FROM:<j\xfcrgen@example.org>\r\n", R((501, 553)))]),
    Row("invalid-utf8-sender-with-smtputf8", "ehlo",
        [S(b"MAIL FROM:<j\xff\xfergen@example.org> SMTPUTF8\r\n", R((501, 553)))]),
    Row("8bit-parameter-value", "ehlo",
        [S("MAIL FROM:<alice@example.org> ENVID=ä\r\n", R((500, 501, 555)))]),

    # lengths of addresses (RFC 5321 4.5.3.1.1-3: local part 64, domain 255,
    # path 256 octets with its brackets; RFC 1035: labels of 63)
    Row("local-part-64-ok", "mail", [S("RCPT TO:<%s@tern.test>\r\n" % ("l" * 64),
                                       R(550, "5.1.1"))]),
    Row("local-part-65-rcpt", "mail", [S("RCPT TO:<%s@tern.test>\r\n" % ("l" * 65),
                                         R((501, 553), "5.1.3"))]),
    Row("local-part-65-mail", "ehlo", [S("MAIL FROM:<%s@example.org>\r\n" % ("l" * 65),
                                         R((501, 553), "5.1.7"))]),
    Row("domain-256-mail", "ehlo", [S("MAIL FROM:<a@%s>\r\n" % domain_of(256),
                                      R((501, 553), "5.1.7"))]),
    Row("domain-256-rcpt", "mail", [S("RCPT TO:<a@%s>\r\n" % domain_of(256),
                                      R((501, 553), "5.1.3"))]),
    Row("label-63-ok", "mail", [S("RCPT TO:<carol@%s.example.net>\r\n" % ("l" * 63),
                                  R(554, "5.7.1"))]),
    Row("label-64-rcpt", "mail", [S("RCPT TO:<bob@%s.tern.test>\r\n" % ("l" * 64),
                                    R((501, 553), "5.1.3"))]),
    Row("path-256-ok", "ehlo", [S("MAIL FROM:<%s@%s>\r\n" % ("l" * 64, domain_of(189)),
                                  R(250, "2.1.0"))]),
    Row("path-257-mail", "ehlo", [S("MAIL FROM:<%s@%s>\r\n" % ("l" * 64, domain_of(190)),
                                    R((501, 553), "5.1.7"))]),

    # more path abuse: no open relay through syntax tricks
    Row("rcpt-null-path", "mail", [S("RCPT TO:<>\r\n", R((501, 553), "5.1.3"))]),
    Row("mail-nested-brackets", "ehlo", [S("MAIL FROM:<<alice@example.org>>\r\n",
                                           R((501, 553), "5.1.7"))]),
    Row("rcpt-percent-hack", "mail", [S("RCPT TO:<carol%example.net@tern.test>\r\n",
                                        R(550, "5.1.1"))]),
    Row("rcpt-two-ats", "mail", [S("RCPT TO:<carol@example.net@tern.test>\r\n",
                                   R((501, 553), "5.1.3"))]),
    Row("rcpt-source-route-out", "mail", [S("RCPT TO:<@tern.test:carol@example.net>\r\n",
                                            R(554, "5.7.1"))]),

    # recipients and sequence (RFC 5321 3.3, 4.1.4, 4.5.3.1.10)
    Row("10000-rcpts-pipelined", "mail", [Do(rcpt_flood)]),
    Row("rcpt-before-mail-pipelined", "ehlo",
        [S("RCPT TO:<bob@tern.test>\r\nDATA\r\n", R(503, "5.5.1"), R(503, "5.5.1"))]),
    Row("data-without-mail", "ehlo", [S("DATA\r\n", R(503, "5.5.1"))]),
    Row("data-before-ehlo", "greet", [S("DATA\r\n", R(503, "5.5.1"))]),
    Row("data-without-rcpt", "mail", [S("DATA\r\n", R((503, 554)))]),
    Row("data-after-refused-rcpt-pipelined", "ehlo",
        [S(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<nosuch@tern.test>\r\nDATA\r\n"
           b"Subject: x\r\n\r\nbody\r\n.\r\n",
           R(250, "2.1.0"), R(550, "5.1.1"), R((503, 554)),
           R(500, n=4))]),  # the body lines are then commands, each refused
    Row("mail-twice-pipelined", "ehlo",
        [S("MAIL FROM:<alice@example.org>\r\nMAIL FROM:<eve@example.org>\r\n"
           "RCPT TO:<bob@tern.test>\r\n",
           R(250, "2.1.0"), R(503, "5.5.1"), R(250, "2.1.5"))]),
    Row("data-with-argument", "rcpt", [S("DATA now\r\n", R(501))]),
    Row("refused-rset-keeps-transaction", "rcpt",
        [S("RSET everything\r\n", R(501)), S("DATA\r\n", R(354)),
         S(data_block(message("kept after a bad RSET")), R(250, "2.0.0"))], stored=1),

    # BDAT that lies about its size, or comes out of turn (RFC 3030 2)
    Row("bdat-size-lie-then-silence", "rcpt", [S(b"BDAT 10 LAST\r\n12345")], end=CLOSED_421,
        config={"timeout_data": "1s"}),
    Row("bdat-size-short-rest-are-commands", "rcpt",
        [S(b"BDAT 3\r\nabcMAIL FROM:<eve@example.org>\r\n", R(250), R(503, "5.5.1"))]),
    Row("bdat-huge-beyond-max-size", "rcpt", [S(huge_bdat, R(552, "5.3.4"))]),
    Row("bdat-chunks-add-up-beyond-max-size", "rcpt",
        [S(bdat(b"Subject: big\r\n\r\n" + (b"z" * 78 + b"\r\n") * 750, last=False), R(250)),
         SA(bdat((b"z" * 78 + b"\r\n") * 750, last=False) + bdat(b"end\r\n"),
            [R(552, "5.3.4"), R(503, "5.5.1")], [R(250), R(552, "5.3.4")])]),
    Row("bdat-size-over-2-64", "rcpt", [S(b"BDAT 99999999999999999999999 LAST\r\n", R(501))],
        end=CLOSED_OR_SYNC),
    Row("bdat-size-negative", "rcpt", [S(b"BDAT -5 LAST\r\n", R(501))], end=CLOSED_OR_SYNC),
    Row("bdat-size-not-a-number", "rcpt", [S(b"BDAT ten LAST\r\n", R(501))],
        end=CLOSED_OR_SYNC),
    Row("bdat-size-hex", "rcpt", [S(b"BDAT 0x10 LAST\r\n", R(501))], end=CLOSED_OR_SYNC),
    Row("bdat-no-size", "rcpt", [S(b"BDAT\r\n", R(501))], end=CLOSED_OR_SYNC),
    Row("bdat-bad-end-marker", "rcpt", [S(b"BDAT 5 FIRST\r\n", R(501))], end=CLOSED_OR_SYNC),
    Row("bdat-without-mail", "ehlo", [S(bdat(b"QUIT\r\nQUIT\r\nQUIT\r\nxx"), R(503, "5.5.1"))]),
    Row("bdat-before-ehlo", "greet", [S(bdat(b"QUIT\r\n", last=False), R(503, "5.5.1"))]),
    Row("bdat-after-refused-rcpt", "ehlo",
        [S(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<nosuch@tern.test>\r\n"
           + bdat(b"QUIT\r\n"), R(250), R(550, "5.1.1"), R((503, 554)))]),
    Row("bdat-after-bdat-last", "rcpt",
        [S(bdat(b"Subject: chunked\r\n\r\nbody\r\n"), R(250, "2.0.0")),
         S(bdat(b"QUIT\r\n"), R(503, "5.5.1"))], stored=1),
    Row("rset-between-bdat-chunks", "rcpt",
        [S(bdat(b"Subject: dropped\r\n", last=False) + b"RSET\r\n" + bdat(b"\r\nbody\r\n"),
           R(250), R(250), R(503, "5.5.1"))]),
    Row("mail-between-bdat-chunks", "rcpt",
        [S(bdat(b"Subject: x\r\n", last=False) + b"MAIL FROM:<eve@example.org>\r\n",
           R(250), R(503, "5.5.1"))]),
    Row("data-after-bdat-chunk", "rcpt",
        [S(bdat(b"Subject: mixed\r\n", last=False), R(250)), S(b"DATA\r\n", R(503, "5.5.1"))]),

    # AUTH on the plain listener before TLS (DESIGN.md: 538 5.7.11)
    Row("auth-invalid-base64-before-tls", "ehlo",
        [S("AUTH PLAIN !!!not*base64===\r\n", R(538, "5.7.11"))]),
    Row("auth-login-before-tls-no-continuation", "ehlo",
        [S("AUTH LOGIN\r\n*\r\n", R(538, "5.7.11"), R(500))]),
    Row("auth-unknown-mechanism-before-tls", "ehlo",
        [S("AUTH XOAUTH2 dGVzdA==\r\n", R((504, 538)))]),
    Row("auth-no-mechanism", "ehlo", [S("AUTH\r\n", R((501, 538)))]),
    Row("auth-in-transaction", "mail", [S("AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", R(503, "5.5.1"))]),
    Row("auth-line-600", "ehlo", [S("AUTH PLAIN %s\r\n" % ("QUFB" * 150), R(500, "5.5.2"))]),
    Row("auth-line-100k", "ehlo", [S("AUTH PLAIN %s\r\n" % ("QUFB" * 25000), R(500, "5.5.2"))]),

    # text lines in message data (RFC 5321 4.5.3.1.6: 1000 octets with CRLF;
    # DESIGN.md: line too long 500 5.5.2), size and hop count
    Row("data-line-1000-ok", "data",
        [S(data_block(message("long line", body="b" * 998 + "\n")), R(250, "2.0.0"))], stored=1),
    Row("data-line-1001", "data",
        [S(make_message("too long", body="b" * 999 + "\n")), Q(), S(b".\r\n", R(500, "5.5.2"))]),
    Row("data-header-line-1mb", "data", [S(long_header_message), Q(), S(b".\r\n", R(500, "5.5.2"))],
        config={"max_message_size": "4M"}),
    Row("bdat-header-line-1mb", "rcpt", [S(lambda: bdat(long_header_message()), R(500, "5.5.2"))],
        config={"max_message_size": "4M"}),
    Row("data-size-lies-small", "ehlo",
        [S("MAIL FROM:<alice@example.org> SIZE=10\r\nRCPT TO:<bob@tern.test>\r\nDATA\r\n",
           R(250), R(250), R(354)),
         S(lambda: data_block(message("lied about SIZE", body=("s" * 70 + "\n") * 2000)),
           R(552, "5.3.4"))]),
    Row("1000-received-headers-data", "data",
        [S(lambda: data_block(looping_message()), R(554, "5.4.6"))]),
    Row("1000-received-headers-bdat", "rcpt",
        [S(lambda: bdat(looping_message()), R(554, "5.4.6"))]),

    # pipelining abuse (RFC 2920)
    Row("5000-noops-one-write", "ehlo", [Do(noop_flood_memory)]),
    Row("2000-ehlos-one-write", "greet", [Do(ehlo_flood)]),
    Row("client-never-reads", None, [Do(never_reads)], end=NONE),
    Row("max-errors-pipelined", "ehlo", [S(b"XYZZY\r\n" * 60, R(500, n=50))], end=CLOSED_421),
    Row("http-request-on-smtp-port", "greet",
        [S(b"GET / HTTP/1.1\r\nHost: mx.tern.test\r\n\r\n", R(500, n=3))]),

    # STARTTLS (RFC 3207)
    Row("starttls-twice", "ehlo", [Do(starttls_twice)], quit=False),
    Row("starttls-with-argument", "ehlo", [S("STARTTLS now\r\n", R(501))]),
    Row("starttls-injected-command", "ehlo", [Do(starttls_injection)], quit=False),
    Row("quit-over-starttls", "ehlo",
        [Do(starttls), S("EHLO client.example\r\n", R(250)), S("QUIT\r\n", R(221, "2.0.0"))],
        end=CLOSED),
    Row("tls-handshake-random-bytes", "ehlo",
        [Do(tls_handshake_with(garbage(4096, seed=6)))], end=CLOSED),
    Row("tls-handshake-bad-record", "ehlo",
        [Do(tls_handshake_with(b"\x16\x03\x01\x00\x40" + garbage(64, seed=7)))], end=CLOSED),
    Row("tls-handshake-plaintext-ehlo", "ehlo",
        [Do(tls_handshake_with(b"EHLO client.example\r\n"))], end=CLOSED),

    # slowloris
    Row("slowloris-mixed", None, [Do(slowloris)], end=NONE, stored=1,
        config={"max_connections_per_ip": 6}),

    # VRFY and EXPN tell nobody who exists
    Row("vrfy-user-vs-nonuser", "ehlo", [Do(vrfy_identical("VRFY"))]),
    Row("expn-user-vs-nonuser", "ehlo", [Do(vrfy_identical("EXPN"))]),
    Row("vrfy-without-argument", "ehlo", [S("VRFY\r\n", R(501))]),

    # HELO/EHLO arguments (RFC 5321 4.1.1.1: a domain or address literal)
    Row("helo-empty", "greet", [S("HELO\r\n", R(501))]),
    Row("ehlo-space-only", "greet", [S("EHLO \r\n", R(501))]),
    Row("ehlo-empty-label", "greet", [S("EHLO a..b\r\n", R(501))]),
    Row("ehlo-bad-literal", "greet", [S("EHLO [300.1.1.1]\r\n", R(501))]),
    Row("ehlo-angle-brackets", "greet", [S("EHLO <client.example>\r\n", R(501))]),
    Row("ehlo-label-300", "greet", [S("EHLO %s.example\r\n" % ("e" * 300), R(501))]),
    Row("ehlo-domain-256", "greet", [S("EHLO %s\r\n" % domain_of(256), R(501))]),
    Row("ehlo-ipv6-literal-ok", "greet", [S("EHLO [IPv6:::1]\r\n", R(250))]),

    # parameters (RFC 5321 4.1.1.11: 555 for one not recognised; RFC 1870,
    # RFC 3461 4 (xtext that decodes to CR LF), RFC 6531)
    Row("rcpt-unknown-parameter", "mail",
        [S("RCPT TO:<bob@tern.test> FOO=BAR\r\n", R((501, 555)))]),
    Row("mail-binarymime-not-offered", "ehlo",
        [S("MAIL FROM:<alice@example.org> BODY=BINARYMIME\r\n", R((501, 555)))]),
    Row("mail-size-not-a-number", "ehlo", [S("MAIL FROM:<alice@example.org> SIZE=abc\r\n",
                                             R(501))]),
    Row("mail-size-20-digits", "ehlo",
        [S("MAIL FROM:<alice@example.org> SIZE=99999999999999999999\r\n", R(552, "5.3.4"))]),
    Row("mail-size-repeated", "ehlo",
        [S("MAIL FROM:<alice@example.org> SIZE=10 SIZE=20\r\n", R((501, 555)))]),
    Row("mail-envid-crlf-xtext", "ehlo",
        [S("MAIL FROM:<alice@example.org> ENVID=a+0D+0AX-Evil:+20yes\r\n", R(501))]),
    Row("rcpt-orcpt-crlf-xtext", "mail",
        [S("RCPT TO:<bob@tern.test> ORCPT=rfc822;bob+0D+0A@tern.test\r\n", R(501))]),
    Row("rcpt-notify-never-and-success", "mail",
        [S("RCPT TO:<bob@tern.test> NOTIFY=NEVER,SUCCESS\r\n", R(501))]),
    Row("mail-smtputf8-with-value", "ehlo",
        [S("MAIL FROM:<alice@example.org> SMTPUTF8=yes\r\n", R(501))]),
    Row("mail-bare-equals", "ehlo", [S("MAIL FROM:<alice@example.org> =\r\n", R(501))]),
    Row("crlf-inside-parameter", "ehlo",
        [S("MAIL FROM:<alice@example.org> SIZE=1\r\n000\r\n", R(250, "2.1.0"), R(500))]),
    Row("crlf-inside-path", "ehlo",
        [S("MAIL FROM:<alice@exa\r\nmple.org>\r\n", R((501, 553)), R(500))]),
    Row("lf-inside-parameter", "ehlo",
        [SA(b"MAIL FROM:<alice@example.org> SIZE=1\n000\r\n",
            [R(500), R(500)], [R((500, 501, 555))])]),
    Row("cr-inside-parameter", "ehlo",
        [S(b"MAIL FROM:<alice@example.org> SIZE=1\r000\r\n", R(500))]),

    # line lengths (RFC 5321 4.5.3.1.4: 512 octets with CRLF; DESIGN.md 500 5.5.2)
    Row("line-512-ok", "ehlo", [S("NOOP %s\r\n" % ("x" * 505), R(250))]),
    Row("line-513", "ehlo", [S("NOOP %s\r\n" % ("x" * 506), R(500, "5.5.2"))]),
    Row("line-1mb", "ehlo", [S(lambda: b"NOOP " + b"x" * MB + b"\r\n", R(500, "5.5.2"))]),
    Row("mail-line-1mb", "ehlo",
        [S(lambda: b"MAIL FROM:<" + b"a" * MB + b"@example.org>\r\n", R(500, "5.5.2"))]),

    # QUIT
    Row("quit-with-garbage", "ehlo", [Do(quit_with_garbage)]),
    Row("quit-then-more-commands", "ehlo", [Do(quit_then_more)], end=NONE),

    # case, tabs and leading spaces (RFC 5321 2.4: verbs are case-blind;
    # 4.1.1: SP, not HT, separates the verb)
    Row("lowercase-transaction", "greet",
        [S("ehlo client.example\r\n", R(250)), S("mail from:<alice@example.org>\r\n", R(250)),
         S("rcpt to:<bob@tern.test>\r\n", R(250)), S("data\r\n", R(354)),
         S(data_block(message("lower case")), R(250, "2.0.0"))], stored=1),
    Row("mixed-case-verbs", "greet",
        [S("eHlO client.example\r\nNoOp\r\nrSeT\r\nhElP\r\n", R(250), R(250), R(250), R(214))]),
    Row("tab-after-verb", "ehlo", [S("MAIL\tFROM:<alice@example.org>\r\n", R(SYNTAX))]),
    Row("tab-before-parameter", "ehlo",
        [S("MAIL FROM:<alice@example.org>\tSIZE=10\r\n", R((501, 555)))]),
    Row("tab-in-ehlo", "greet", [S("EHLO\tclient.example\r\n", R(SYNTAX))]),
    Row("leading-space", "ehlo", [S(" NOOP\r\n", R(500))]),
    Row("leading-tab", "ehlo", [S("\tNOOP\r\n", R(500))]),
    Row("binary-garbage-line", "ehlo", [S(lambda: garbage(300, seed=3, first=b"\x01")
                                          .replace(b"\r", b"").replace(b"\n", b"")
                                          .replace(b"\x00", b"") + b"\r\n", R(500))]),
]


def params():
    out = []
    for row in ROWS:
        marks = []
        if row.config:
            marks.append(pytest.mark.tern_config(**row.config))
        if row.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=row.xfail))
        out.append(pytest.param(row, id=row.name, marks=marks))
    return out


SHARED_PER_IP = 4  # max_connections_per_ip of the shared daemon


@pytest.fixture(scope="module")
def shared(workroot):
    """One ternd (hosting tern.test with bob) for every row that needs no
    configuration of its own, in table order; test_shared_daemon_after_the_table
    looks at it last.  Its teardown is conftest's: SIGTERM, exit status 0,
    no sanitizer report in its log."""
    base = tempfile.mkdtemp(prefix="hostile", dir=workroot)
    os.chmod(base, 0o755)
    t = Tern(base, "shared", max_connections_per_ip=SHARED_PER_IP)
    state = {"tern": t}
    try:
        t.start()
        t.add_domain("tern.test")
        t.add_user(BOB)
        check_serving_and_stored(t, 0, "start-up")  # warm: first delivery opens what it keeps
        state["fds"] = open_fds(t.pid)
        state["stored"] = 0
        yield state
    finally:
        problems = t.finish()
        if problems:
            pytest.fail("shared daemon: %s\n%s" % ("; ".join(problems), t.report()),
                        pytrace=False)


def test_table_has_at_least_60_rows():
    names = [row.name for row in ROWS]
    assert len(names) >= 60, len(names)
    assert len(set(names)) == len(names), "duplicate row names"


@pytest.mark.parametrize("row", params())
def test_hostile_input(request, shared, row):
    """Rows with a configuration of their own, and those expected to fail,
    get a fresh daemon (conftest's `tern` fixture and its tern_config
    marker); the others share one."""
    if row.solo:
        t = request.getfixturevalue("tern")
        before = 0
    else:
        t = shared["tern"]
        request.node.tern_instances = [t]  # its log goes into a failure's report
        before = shared["stored"]
        shared["stored"] += row.stored  # counted even if the row fails: no cascade
    run_row(t, row)
    check_serving_and_stored(t, before + row.stored, row.name, settle=0)


def test_shared_daemon_after_the_table(request, shared):
    """After every shared row, one after the other: the daemon still
    delivers, bob holds exactly the messages the rows expected (after a
    pause in which a late, wrongly accepted one would land), it holds no
    more descriptors than before the table, and it admits
    max_connections_per_ip clients at once (no slot leaked by a session
    that ended badly).  Its clean exit is the fixture's teardown."""
    t = shared["tern"]
    request.node.tern_instances = [t]
    check_serving_and_stored(t, shared["stored"], "the whole table", settle=0.5)

    def all_admitted():
        held = [connect(t) for _ in range(SHARED_PER_IP)]
        try:
            return all(c.reply().code == 220 for c in held)
        finally:
            for c in held:
                c.close()

    poll(all_admitted, 10 * SLOW, 0.2, what="%d clients admitted at once" % SHARED_PER_IP)

    def fds_back():
        return open_fds(t.pid) <= shared["fds"] + 2

    poll(fds_back, 5 * SLOW, 0.1, what="descriptors back to %d (now %d)"
         % (shared["fds"], open_fds(t.pid)))
    assert t.running()
