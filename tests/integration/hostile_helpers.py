"""hostile_helpers.py - the machinery of the hostile-client table
(test_hostile.py): rows, steps, expected replies, the end-of-row
invariants and the bulk tools a flood needs.

A row is a name, how far the session is set up before the hostile part
(greeting, EHLO, MAIL, RCPT or DATA), the steps (bytes to send and the
replies they must get, in order), how the session must end (in sync, or
closed with 421, ...) and how many messages bob@tern.test must hold
afterwards.  Expected replies are written from RFC 5321 (4.2 reply codes,
4.5.3 limits) and RFC 3463 (enhanced codes) and from the contracts in
DESIGN.md; where the RFCs leave the server a choice between codes, a row
names every code it allows.
"""
import os
import random
import socket
import ssl
import threading
import time

from helpers import (SLOW, ConnectionClosed, Reply, SMTPConn, check, data_block,
                     make_message, poll, proc_status, unique_id)

# ends of a row
SYNC = "sync"  # NOOP gets exactly one 250 and QUIT its 221
CLOSED_421 = "closed 421"  # the next reply is 421, then the server closes
CLOSED = "closed"  # the server closes (no reply owed: e.g. a broken TLS handshake)
CLOSED_OR_SYNC = "closed or sync"  # either is right (the input cannot be resynchronised)
NONE = "none"  # the row's own steps checked everything

SENDER = "alice@example.org"
BOB = "bob@tern.test"
MARKER = "hostile-suite marker"


class R:
    """An expected reply: CODE is an int, a tuple of allowed ints, or one
    digit for the class; ENHANCED, when given, is the RFC 3463 code (or a
    tuple of allowed ones); N is how many such replies come in a row."""

    def __init__(self, code, enhanced=None, n=1):
        self.code = code if isinstance(code, tuple) else (code,)
        self.enhanced = enhanced if isinstance(enhanced, (tuple, type(None))) else (enhanced,)
        self.n = n

    def matches(self, reply):
        code_ok = any(reply.code // 100 == c if c < 10 else reply.code == c
                      for c in self.code)
        return reply.well_formed and code_ok and (
            self.enhanced is None or reply.enhanced in self.enhanced)

    def __repr__(self):
        codes = "/".join("%dxx" % c if c < 10 else str(c) for c in self.code)
        enh = " " + "/".join(self.enhanced) if self.enhanced else ""
        return "%s%s%s" % (codes, enh, " x%d" % self.n if self.n != 1 else "")


def expect(reply, e, what):
    assert e.matches(reply), "%s: expected %r, got:\n%s" % (what, e, reply)
    return reply


class S:
    """A step: send DATA (bytes, str, or a callable making them, for big
    inputs), then read one reply per expectation, in order."""

    def __init__(self, data, *replies):
        self.data = data
        self.replies = replies

    def run(self, ctx):
        data = self.data() if callable(self.data) else self.data
        if isinstance(data, str):
            data = data.encode("utf-8")
        ctx.c.send(data)
        for e in self.replies:
            for i in range(e.n):
                expect(ctx.c.reply(), e, "%s: reply %d to %s" % (ctx.row.name, len(ctx.got) + 1,
                                                                 short(data)))
                ctx.got.append(e)


class SA:
    """A step whose replies the RFCs let vary in number: send DATA and then
    HELP as a sentinel, read replies up to HELP's 214, and require them to
    match one of ALTERNATIVES (lists of R, each R with n=1)."""

    def __init__(self, data, *alternatives):
        self.data = data
        self.alternatives = alternatives

    def run(self, ctx):
        data = self.data.encode("utf-8") if isinstance(self.data, str) else self.data
        ctx.c.send(data + b"HELP\r\n")
        got = []
        while True:
            r = ctx.c.reply()
            if r.code == 214:
                break
            got.append(r)
            assert len(got) <= 20, "%s: no end to the replies: %s" % (ctx.row.name, got)
        for alt in self.alternatives:
            if len(alt) == len(got) and all(e.matches(r) for e, r in zip(alt, got)):
                return
        raise AssertionError("%s: replies to %s:\n%s\nmatch none of %s" % (
            ctx.row.name, short(data), "\n".join(map(str, got)), self.alternatives))


class Q:
    """A step: the server must say nothing for SECS seconds (e.g. no reply
    before the end of the data it is reading)."""

    def __init__(self, secs=0.2):
        self.secs = secs

    def run(self, ctx):
        assert not ctx.c.pending(self.secs), "%s: unexpected reply %r" % (ctx.row.name, ctx.c.buf)


class Do:
    """A step that is a function of the row's context (floods, TLS, many
    connections)."""

    def __init__(self, fn):
        self.fn = fn

    def run(self, ctx):
        self.fn(ctx)


class Row:
    def __init__(self, name, setup, steps, end=SYNC, stored=0, config=None, xfail=None,
                 solo=False, end_enhanced=None, quit=True):
        self.name = name
        self.setup = setup  # None, "greet", "ehlo", "mail", "rcpt" or "data"
        self.steps = steps
        self.end = end
        self.end_enhanced = end_enhanced  # for CLOSED_421
        self.quit = quit  # SYNC ends with QUIT (221 and the close)
        self.stored = stored  # messages bob must hold afterwards
        self.config = config or {}
        self.xfail = xfail
        # solo: runs on a daemon of its own (its own configuration, or a
        # known failure that must not disturb the rows after it)
        self.solo = solo or bool(self.config) or bool(xfail)


class Context:
    """What a row's steps see: the daemon, the connection, the row."""

    def __init__(self, tern, row):
        self.tern = tern
        self.row = row
        self.c = None
        self.got = []


def short(data, limit=60):
    r = repr(bytes(data[:limit]))
    return r + ("...(%d bytes)" % len(data) if len(data) > limit else "")


def connect(tern, source=None):
    return SMTPConn(tern.smtp_port, timeout=10 * SLOW, source=source)


def setup_session(tern, how):
    """A connection brought to the state HOW."""
    if how is None:
        return None
    order = ["greet", "ehlo", "mail", "rcpt", "data"]
    c = connect(tern)
    try:
        c.greet()
        stage = order.index(how)
        if stage >= 1:
            c.ehlo()
        if stage >= 2:
            c.expect("MAIL FROM:<%s>" % SENDER, 250)
        if stage >= 3:
            c.expect("RCPT TO:<%s>" % BOB, 250)
        if stage >= 4:
            c.expect("DATA", 354)
    except BaseException:
        c.close()
        raise
    return c


def send_quietly(c, data):
    """Send to a peer that may have closed: a failed write is not an error
    here, the reply (or the close) that follows says what happened."""
    try:
        c.send(data)
    except OSError:
        pass


def end_sync(c, name, quit=True):
    """The session is in sync: NOOP gets one 250 and the next command
    (HELP) its own 214, so no reply was owed from before; then QUIT gets
    221 and the close, with nothing after it."""
    c.send(b"NOOP\r\nHELP\r\n")
    check(c.reply(), 250, what="%s: NOOP after the row (out of sync?)" % name)
    check(c.reply(), 214, what="%s: HELP after the NOOP (a second reply to one NOOP?)" % name)
    if not quit:
        return
    check(c.cmd("QUIT"), 221, what="%s: QUIT" % name)
    assert c.wait_closed(5 * SLOW), "%s: QUIT did not close the connection" % name
    assert c.buf == b"", "%s: bytes after the 221: %r" % (name, c.buf)


def end_closed_421(c, name, enhanced=None):
    check(c.reply(timeout=15 * SLOW), 421, enhanced, what="%s: closing reply" % name)
    assert c.wait_closed(5 * SLOW), "%s: connection left open after 421" % name
    assert c.buf == b"", "%s: bytes after the 421: %r" % (name, c.buf)


def end_closed_or_sync(c, name):
    """The server either closes (with or without a 421 first) or stays in
    sync; it must not answer a NOOP with anything but one 250."""
    send_quietly(c, b"NOOP\r\nQUIT\r\n")
    try:
        r = c.reply(timeout=5 * SLOW)
    except ConnectionClosed:
        return
    if r.code == 421:
        assert c.wait_closed(5 * SLOW), "%s: connection left open after 421" % name
        return
    check(r, 250, what="%s: NOOP after the row" % name)
    check(c.reply(), 221, what="%s: QUIT after the NOOP" % name)
    assert c.wait_closed(5 * SLOW)


def finish_row(ctx):
    row, c = ctx.row, ctx.c
    if c is None or row.end == NONE:
        return
    if row.end == SYNC:
        end_sync(c, row.name, quit=row.quit)
    elif row.end == CLOSED_421:
        end_closed_421(c, row.name, row.end_enhanced)
    elif row.end == CLOSED:
        assert c.wait_closed(5 * SLOW), "%s: the server kept the connection open" % row.name
    elif row.end == CLOSED_OR_SYNC:
        end_closed_or_sync(c, row.name)
    else:
        raise ValueError(row.end)


def run_row(tern, row):
    """Set up, run the steps and check the end of ROW's session."""
    ctx = Context(tern, row)
    ctx.c = setup_session(tern, row.setup)
    try:
        for step in row.steps:
            step.run(ctx)
        finish_row(ctx)
    finally:
        if ctx.c is not None:
            ctx.c.close()
    return ctx


# after a row: the daemon serves, and bob's Maildir holds what it should


def deliver_marker(tern):
    """A normal delivery to bob on a fresh connection; its subject."""
    subject = "%s %s" % (MARKER, unique_id())
    with connect(tern) as c:
        c.greet()
        c.ehlo()
        c.deliver([BOB], make_message(subject))
        c.expect("QUIT", 221)
    return subject


def check_serving_and_stored(tern, expected, name, settle=0.1):
    """ternd still runs and delivers a normal message, and bob's Maildir
    holds EXPECTED messages besides the markers; nothing is left in tmp."""
    assert tern.running(), "%s: ternd is gone" % name
    subject = deliver_marker(tern)

    def marker_in():
        return any(subject.encode() in raw for raw in tern.read_messages(BOB))

    poll(marker_in, 10 * SLOW, what="the marker message after %s" % name)
    time.sleep(settle)  # a message wrongly accepted before would have landed too
    raws = tern.read_messages(BOB)
    others = [raw for raw in raws if MARKER.encode() not in raw]
    assert len(others) == expected, "%s: bob holds %d message(s) besides the markers, " \
        "expected %d:\n%s" % (name, len(others), expected, "\n".join(short(r, 300) for r in others))
    # Maildir delivery links tmp/X to new/X and then unlinks tmp/X: a
    # moment with the name in both is normal; a name that stays is not.
    tmp = os.path.join(tern.maildir(BOB), "tmp")

    def tmp_empty():
        return not os.path.isdir(tmp) or os.listdir(tmp) == []

    poll(tmp_empty, 5 * SLOW, 0.02, what="%s: Maildir/tmp empty (holds %s)"
         % (name, os.listdir(tmp) if os.path.isdir(tmp) else []))
    return others


# bulk replies: floods of pipelined commands


def read_replies(c, n, timeout=None):
    """N replies from C at once (a flood makes SMTPConn.reply quadratic)."""
    deadline = time.monotonic() + (timeout or 30 * SLOW)
    buf = bytearray(c.buf)
    c.buf = b""
    pos, lines, replies = 0, [], []
    while len(replies) < n:
        i = buf.find(b"\r\n", pos)
        if i < 0:
            del buf[:pos]
            pos = 0
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("only %d of %d replies came; then %r"
                                     % (len(replies), n, bytes(buf[:200])))
            c.sock.settimeout(remaining)
            try:
                chunk = c.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                c.eof = True
                raise ConnectionClosed("closed after %d of %d replies; unread %r"
                                       % (len(replies), n, bytes(buf[:200])))
            buf += chunk
            continue
        line = bytes(buf[pos:i]).decode("utf-8", "replace")
        pos = i + 2
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            replies.append(Reply(lines))
            lines = []
    c.buf = bytes(buf[pos:])
    return replies


def runs(replies):
    """Run-length summary [(count, code, enhanced)] of a list of replies."""
    out = []
    for r in replies:
        key = (r.code, r.enhanced)
        if out and out[-1][1:] == key:
            out[-1] = (out[-1][0] + 1,) + key
        else:
            out.append((1,) + key)
    return out


def flood(c, payload, n, threaded=True):
    """Write PAYLOAD in one sendall and read N replies meanwhile (from a
    second thread, so a server that stops reading while its replies are not
    taken cannot deadlock the test); the replies."""
    err = []

    def writer():
        try:
            c.sock.sendall(payload)
        except OSError as e:
            err.append(e)

    if not threaded:
        writer()
        return read_replies(c, n)
    t = threading.Thread(target=writer)
    t.start()
    try:
        replies = read_replies(c, n)
    finally:
        t.join(60 * SLOW)
    assert not err, "writing the flood failed: %s" % err
    return replies


# memory of the daemon


def reset_peak_rss(pid):
    """Reset VmHWM to the current RSS (proc(5), clear_refs "5"); False when
    that is not allowed here."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def kib(pid, field):
    return int(proc_status(pid)[field].split()[0])


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# TLS


def tls_context():
    """A client context that accepts the daemon's self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def starttls(ctx):
    """STARTTLS on the row's connection: 220, then the handshake."""
    c = ctx.c
    check(c.cmd("STARTTLS"), 220, what="%s: STARTTLS" % ctx.row.name)
    assert c.buf == b"", "bytes after the 220, before the handshake: %r" % c.buf
    c.sock = tls_context().wrap_socket(c.sock)


# building hostile input


def domain_of(n):
    """A syntactically valid domain of exactly N octets, labels <= 63."""
    out = "example" if (n - 7) % 64 != 1 else "examples"
    while len(out) < n:
        r = n - len(out)
        take = 64 if r >= 64 else r  # a label of TAKE-1 octets and its dot
        out = "d" * (take - 1) + "." + out
    assert len(out) == n
    return out


def garbage(n, seed, first=b"\xff"):
    """N reproducible random bytes starting with FIRST (not a TLS record
    type, so a TLS server knows at once that it is not a handshake)."""
    return first + random.Random(seed).randbytes(n - len(first))


def message(subject, body="Hello.\n", extra_headers=()):
    return make_message(subject, body=body, extra_headers=extra_headers)


def transaction(subject, rcpt=BOB):
    """A complete pipelined transaction that must be accepted."""
    return (b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (SENDER.encode(), rcpt.encode())
            + data_block(message(subject)))


def bdat(chunk, last=True):
    return b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk
