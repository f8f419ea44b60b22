"""helpers.py - what the integration tests share besides the fixtures.

Where the binaries are, building messages, dot-stuffing (RFC 5321 4.5.2),
reading delivered messages back, waiting for a condition by polling,
/proc status, and SMTPConn: a raw line-based SMTP client (RFC 5321 4.2
replies, RFC 3463 enhanced codes) for the inputs smtplib will not send.
Starting processes is conftest.py's job.
"""
import email.parser
import email.policy
import os
import pwd
import random
import re
import socket
import time
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("TERN_BUILD", os.path.join(REPO, "build")))
TERND = os.path.join(BUILD, "ternd")
TERNCTL = os.path.join(BUILD, "ternctl")
ASAN = os.path.basename(BUILD.rstrip("/")) == "build-asan"
IS_ROOT = os.geteuid() == 0
# ASan builds start and run slower; give every wait the same head room.
SLOW = 3 if ASAN else 1
DELIVERY_TIMEOUT = 10 * SLOW
START_TIMEOUT = 20 * SLOW

DAEMON_USER = "nobody" if IS_ROOT else pwd.getpwuid(os.geteuid()).pw_name
DAEMON_PW = pwd.getpwnam(DAEMON_USER)

HOSTNAME = "mx.tern.test"
DOMAIN = "tern.test"
QUEUED_RE = re.compile(r"queued as (\S+)")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")


def sanitizer_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


_ports_given = set()


def free_port():
    """A TCP port on 127.0.0.1 that nobody uses right now, chosen below the
    kernel's ephemeral range so that the tests' own client connections
    cannot take it between now and the daemon's bind.  No port is handed
    out twice in a run, so no test meets the TIME_WAIT sockets of another."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port in _ports_given:
            continue
        _ports_given.add(port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


def poll(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Call PREDICATE until it returns something true; return that value.

    Raises AssertionError naming WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def unique_id():
    return uuid.uuid4().hex[:16]


def make_message(subject, body="Hello.\n", sender="alice@example.org",
                 to="bob@tern.test", msgid=None, extra_headers=()):
    """An RFC 5322 message as bytes with CRLF line ends (no dot-stuffing).

    BODY may be str (encoded as UTF-8) or bytes; bare LFs in it become CRLF."""
    if msgid is None:
        msgid = "<%s@client.example>" % unique_id()
    lines = [
        "From: <%s>" % sender,
        "To: <%s>" % to,
        "Subject: %s" % subject,
        "Message-ID: %s" % msgid,
        "Date: Mon, 01 Jan 2024 12:00:00 +0000",
    ]
    lines.extend(extra_headers)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    if isinstance(body, str):
        body = body.encode("utf-8")
    body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return head + body


def data_block(message):
    """MESSAGE (CRLF bytes) dot-stuffed and terminated by CRLF.CRLF, as sent
    after a 354 reply."""
    stuffed = re.sub(rb"(?m)^\.", b"..", message)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def to_lf(message):
    """MESSAGE as a Maildir stores it: CRLF line ends turned into LF."""
    return message.replace(b"\r\n", b"\n")


def parse(raw):
    """The delivered message RAW (bytes) as an email.message.Message."""
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)


def header_block(raw):
    """The header lines of RAW, unfolded, as str (surrogate-escaped)."""
    head = raw.split(b"\n\n", 1)[0].decode("utf-8", "surrogateescape")
    unfolded = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip()
        else:
            unfolded.append(line)
    return unfolded


def subject_of(raw):
    msg = parse(raw)
    return msg.get("Subject")


def proc_status(pid):
    """The fields of /proc/PID/status as a dict of str."""
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


def has_sanitizer_report(text):
    return [m for m in SANITIZER_MARKERS if m in text]


def tail(text, lines=200):
    parts = text.splitlines()
    if len(parts) <= lines:
        return text
    return "[... %d lines cut ...]\n" % (len(parts) - lines) + "\n".join(parts[-lines:])


def file_mode(path):
    return os.stat(path).st_mode & 0o7777


ENHANCED_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


class ConnectionClosed(Exception):
    """The server closed the connection while a reply was expected."""


class Reply:
    """One SMTP reply (RFC 5321 4.2): its lines, code and enhanced code."""

    def __init__(self, lines):
        self.lines = lines
        last = lines[-1]
        self.code = int(last[:3]) if last[:3].isdigit() else -1
        self.texts = [line[4:] for line in lines]
        first = self.texts[0].split(" ", 1)[0] if self.texts else ""
        self.enhanced = first if ENHANCED_RE.fullmatch(first) else None
        self.text = "\n".join(self.texts)
        self.well_formed = all(
            line[:3] == last[:3] and (len(line) == 3 or line[3] in " -")
            for line in lines)

    def __str__(self):
        return "\n".join(self.lines)

    __repr__ = __str__


def check(reply, code, enhanced=None, what=""):
    """Assert REPLY has CODE (an int, or one digit 2/4/5 for the class) and,
    when given, the ENHANCED status code (RFC 3463)."""
    label = (what + ": ") if what else ""
    assert reply.well_formed, "%smalformed reply:\n%s" % (label, reply)
    if code < 10:
        assert reply.code // 100 == code, \
            "%sexpected a %dxx reply, got:\n%s" % (label, code, reply)
    else:
        assert reply.code == code, \
            "%sexpected %d %s, got:\n%s" % (label, code, enhanced or "", reply)
    if enhanced is not None:
        assert reply.enhanced == enhanced, \
            "%sexpected enhanced code %s, got:\n%s" % (label, enhanced, reply)
    return reply


class SMTPConn:
    """A raw, line-based SMTP client for tests that send what smtplib would
    refuse to send: bad syntax, bare CR/LF, NUL, pipelined batches."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None):
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            raise ConnectionClosed("connection closed; unread: %r" % self.buf)
        self.buf += chunk

    def read_line(self, timeout=None):
        """One reply line without its CRLF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            if self.eof:
                raise ConnectionClosed("connection closed; unread: %r" % self.buf)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("no complete reply line; got %r" % self.buf)
            self._fill(remaining)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, timeout=None):
        lines = []
        while True:
            line = self.read_line(timeout).decode("utf-8", "replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return Reply(lines)

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF added) and read its reply."""
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply(timeout)

    def expect(self, line, code, enhanced=None):
        return check(self.cmd(line), code, enhanced, what=repr(line))

    def greet(self):
        return check(self.reply(), 220, what="greeting")

    def ehlo(self, name="client.example"):
        return self.expect("EHLO " + name, 250)

    def pending(self, wait):
        """Does the server send anything within WAIT seconds?"""
        if self.buf:
            return True
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return True
        self.buf += chunk
        return True

    def wait_closed(self, timeout=10.0):
        """True when the server closes the connection within TIMEOUT seconds
        (anything it sends meanwhile is kept in self.buf)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self._fill(remaining)
            except ConnectionClosed:
                return True
            except socket.timeout:
                return False
        return True

    def begin(self, sender, rcpts, params=""):
        """MAIL and RCPT (each expected to get 250), then DATA (354)."""
        self.expect("MAIL FROM:<%s>%s" % (sender, params), 250)
        for rcpt in rcpts:
            self.expect("RCPT TO:<%s>" % rcpt, 250)
        self.expect("DATA", 354)

    def deliver(self, rcpts, message, sender="alice@example.org"):
        """One whole transaction that must be accepted; the queue id."""
        self.begin(sender, rcpts)
        self.send(data_block(message))
        r = check(self.reply(), 250, "2.0.0", what="end of data")
        m = QUEUED_RE.search(r.text)
        assert m, "250 after data without 'queued as ID': %s" % r
        return m.group(1)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
