"""relay_helpers.py - the remote side of the relay tests.

  DNS        a private dnsmasq on a free loopback port holding the test
             domains (TEST_DOMAINS below); every other name under .test is
             NXDOMAIN but tempfail.test, whose lookups time out.  ternd
             reaches it through `dns_server`.
  Sink       Postfix's smtp-sink on 127.0.0.N:PORT, every transaction dumped
             to a file (-d) and read back: client address, EHLO, MAIL and
             RCPT arguments, the message.
             (Both are started and stopped by peers.py, which the benchmark
             shares.)
  Scripted   a small SMTP receiver in Python for what smtp-sink cannot do
             conditionally: defer the first attempt, refuse one recipient,
             hold the reply to "." open, leave DSN out of EHLO.  It counts
             connections and transactions.
  Postfix    a real Postfix with its own config, queue and data directories
             in the test's tmp dir, listening on 127.0.0.N:PORT, offering
             STARTTLS with a self-signed certificate and delivering the test
             domain to one Maildir.

The fixtures (dns, remote_port, receivers, relay) are imported by the test
modules that use them.  Receivers listen on 127.0.0.2 and up (all of 127/8 is the loopback), on the
port given to ternd as `remote_port`, so the DNS answers can stay fixed
while every test picks a fresh port.
"""
import email.parser
import email.policy
import glob
import os
import pwd
import shutil
import socket
import socketserver
import subprocess
import threading
import time

import pytest

from helpers import SLOW, data_block, free_port, poll, unique_id
from peers import Dnsmasq, SmtpSink, wait_listening

SENDER = "bob@tern.test"  # a local user: reports land in its Maildir

# Addresses of the receivers (the DNS below points at them).
SINK_ADDR = "127.0.0.2"
PRIO1_ADDR, PRIO2_ADDR = "127.0.0.3", "127.0.0.4"
DEAD_ADDR, LIVE_ADDR = "127.0.0.5", "127.0.0.6"
IMPLICIT_ADDR = "127.0.0.7"
SCRIPT_ADDR = "127.0.0.8"
POSTFIX_ADDR = "127.0.0.9"
SOURCE_ADDR = "127.0.0.33"  # a sending user's --source-ip

# dnsmasq arguments: the test zone.
TEST_DOMAINS = [
    "--mx-host=sink.test,mx.sink.test,10",
    "--host-record=mx.sink.test,%s" % SINK_ADDR,
    # Two preferences: the better one must win.
    "--mx-host=prio.test,mx1.prio.test,10",
    "--mx-host=prio.test,mx2.prio.test,20",
    "--host-record=mx1.prio.test,%s" % PRIO1_ADDR,
    "--host-record=mx2.prio.test,%s" % PRIO2_ADDR,
    # The best MX does not listen: the next one gets the mail.
    "--mx-host=fallback.test,dead.fallback.test,10",
    "--mx-host=fallback.test,live.fallback.test,20",
    "--host-record=dead.fallback.test,%s" % DEAD_ADDR,
    "--host-record=live.fallback.test,%s" % LIVE_ADDR,
    # No MX at all: the domain's own address (RFC 5321 5.1).
    "--host-record=implicit.test,%s" % IMPLICIT_ADDR,
    # RFC 7505 null MX.
    "--mx-host=nullmx.test,.,0",
    "--mx-host=script.test,mx.script.test,10",
    "--host-record=mx.script.test,%s" % SCRIPT_ADDR,
    "--mx-host=postfix.test,mx.postfix.test,10",
    "--host-record=mx.postfix.test,%s" % POSTFIX_ADDR,
]


class DNS(Dnsmasq):
    """dnsmasq answering for .test on 127.0.0.1:PORT (UDP and TCP)."""

    def __init__(self, root):
        # tempfail.test is forwarded to a port where nobody answers: its
        # lookups time out (a temporary DNS failure).
        dead = free_port()
        super().__init__(os.path.join(root, "dnsmasq.log"), free_port(), TEST_DOMAINS,
                         extra=["--server=/tempfail.test/127.0.0.1#%d" % dead])


def _daemon_writable_dir(path):
    """A directory the receivers (and ternd, as nobody) may write."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o777)
    return path


class Sink(SmtpSink):
    """smtp-sink on ADDR:PORT dumping every transaction under DIR."""

    def __init__(self, root, addr, port, name="sink", options=()):
        self.dir = _daemon_writable_dir(os.path.join(root, "%s-%s" % (name, addr)))
        super().__init__(os.path.join(root, name + ".log"), addr, port,
                         ["-d", os.path.join(self.dir, "msg.")] + list(options))

    def messages(self):
        """Every captured transaction, oldest file first (by mtime).  A
        dump is written while the message arrives: one still growing (or
        changed in the last half second) is left for the next look."""
        out = []
        paths = sorted(glob.glob(os.path.join(self.dir, "msg.*")), key=os.path.getmtime)
        for p in paths:
            if time.time() - os.path.getmtime(p) < 0.5:
                continue
            with open(p, "rb") as f:
                raw = f.read()
            if raw.endswith(b"\n\n"):
                out.append(parse_dump(raw))
        return out

    def wait(self, count=1, timeout=15):
        def enough():
            found = self.messages()
            return found if len(found) >= count else None

        return poll(enough, timeout, what="%d message(s) at smtp-sink %s" % (count, self.addr))


def parse_dump(raw):
    """An smtp-sink dump: its X- records, then the message (LF line ends,
    dot-unstuffed) after the three-line Received header, without the empty
    line smtp-sink appends."""
    rec = {"client_addr": None, "helo": None, "mail": None, "rcpts": []}
    lines = raw.split(b"\n")
    i = 0
    while i < len(lines):
        line = lines[i].decode("utf-8", "replace")
        i += 1
        name, _, value = line.partition(": ")
        if name == "X-Client-Addr":
            rec["client_addr"] = value
        elif name == "X-Helo-Args":
            rec["helo"] = value
        elif name == "X-Mail-Args":
            rec["mail"] = value
        elif name == "X-Rcpt-Args":
            rec["rcpts"].append(value)
        elif name == "Received":
            i += 2  # its two continuation lines
            break
    body = b"\n".join(lines[i:])
    assert body.endswith(b"\n\n"), "smtp-sink dump without its final empty line"
    rec["message"] = body[:-1]
    return rec


class Transaction:
    def __init__(self, mail):
        self.mail = mail
        self.rcpts = []  # (command argument, reply code)
        self.data = None  # bytes, CRLF, dot-unstuffed; None when no data came


class Connection:
    def __init__(self, peer):
        self.peer = peer
        self.ehlo = None
        self.transactions = []


class Scripted:
    """A scripted SMTP receiver on ADDR:PORT (threads, one per connection).

    rcpt(address, txn_number) -> reply line for RCPT (default 250);
    data(txn_number) -> reply line after "." (default 250);
    dsn=False leaves DSN out of the EHLO reply.  After hold(), replies to
    "." wait until release() (to crash the sender mid-transaction).
    Transactions are numbered from 0 across all connections."""

    def __init__(self, addr, port, dsn=True, rcpt=None, data=None, greeting=None):
        self.addr, self.port = addr, port
        self.dsn = dsn
        self.rcpt = rcpt or (lambda address, n: "250 2.1.5 Ok")
        self.data = data or (lambda n: "250 2.0.0 Ok: queued")
        self.greeting = greeting or "220 mx.script.test ESMTP scripted"
        self.connections = []
        self.lock = threading.Lock()
        self.holding = threading.Event()  # set: replies to "." wait
        self.released = threading.Event()
        self.ntx = 0
        self.open = self.most_open = 0  # connections open now / at most
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 60

            def handle(self):
                outer._session(self)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server((addr, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # what tests look at

    def transactions(self):
        with self.lock:
            return [t for c in self.connections for t in c.transactions]

    def delivered(self):
        """Transactions that ended with a 2xx after the data."""
        return [t for t in self.transactions() if t.data is not None and getattr(t, "ok", False)]

    def wait_delivered(self, count=1, timeout=15):
        def enough():
            d = self.delivered()
            return d if len(d) >= count else None

        return poll(enough, timeout, what="%d delivery(ies) at the scripted receiver" % count)

    def hold(self):
        self.released.clear()
        self.holding.set()

    def release(self):
        self.holding.clear()
        self.released.set()

    def stop(self):
        self.release()
        self.server.shutdown()
        self.server.server_close()

    # the protocol

    def _session(self, h):
        conn = Connection(h.client_address[0])
        with self.lock:
            self.connections.append(conn)
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        try:
            self._converse(h, conn)
        finally:
            with self.lock:
                self.open -= 1

    def _converse(self, h, conn):
        w = h.wfile

        def say(line):
            w.write(line.encode() + b"\r\n")
            w.flush()

        say(self.greeting)
        txn = None
        while True:
            raw = h.rfile.readline(4096)
            if not raw:
                return
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                conn.ehlo = line[5:]
                ext = ["mx.script.test", "PIPELINING", "8BITMIME", "SIZE 50000000",
                       "ENHANCEDSTATUSCODES"] + (["DSN"] if self.dsn else [])
                for i, e in enumerate(ext):
                    say("250%s%s" % ("-" if i < len(ext) - 1 else " ", e))
            elif verb == "HELO":
                say("250 mx.script.test")
            elif verb == "MAIL":
                txn = Transaction(line[10:])
                with self.lock:
                    txn.number = self.ntx
                    self.ntx += 1
                    conn.transactions.append(txn)
                say("250 2.1.0 Ok")
            elif verb == "RCPT":
                arg = line[8:]
                address = arg.split(">", 1)[0].lstrip("<")
                reply = self.rcpt(address, txn.number)
                txn.rcpts.append((arg, int(reply[:3])))
                say(reply)
            elif verb == "DATA":
                if not any(code // 100 == 2 for _, code in txn.rcpts):
                    say("554 5.5.1 No valid recipients")
                    continue
                say("354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    raw = h.rfile.readline(1 << 20)
                    if not raw:
                        return
                    if raw == b".\r\n":
                        break
                    chunks.append(raw[1:] if raw.startswith(b".") else raw)
                txn.data = b"".join(chunks)
                if self.holding.is_set():
                    self.released.wait(60)
                reply = self.data(txn.number)
                txn.ok = reply.startswith("2")
                say(reply)
            elif verb == "RSET":
                say("250 2.0.0 Ok")
            elif verb == "NOOP":
                say("250 2.0.0 Ok")
            elif verb == "QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("502 5.5.2 Command not recognized")


# A private Postfix.

POSTFIX_MASTER_CF = """\
{addr}:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

POSTFIX_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
myhostname = mx.postfix.test
mydomain = postfix.test
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = postfix.test, smarthost.test
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
smtpd_tls_cert_file = {dir}/conf/cert.pem
smtpd_tls_key_file = {dir}/conf/key.pem
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
smtputf8_enable = no
"""


class Postfix:
    """A private Postfix accepting mail for postfix.test and smarthost.test
    (a domain the DNS does not know) on ADDR:PORT with STARTTLS, delivering
    every recipient into DIR/mail/inbox (a Maildir)."""

    def __init__(self, root, addr, port):
        self.addr, self.port = addr, port
        self.dir = os.path.join(root, "postfix")
        conf = os.path.join(self.dir, "conf")
        for sub in ("conf", "queue", "data", "mail"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        os.chmod(self.dir, 0o755)
        pw = pwd.getpwnam("postfix")
        for sub in ("data", "mail"):
            os.chown(os.path.join(self.dir, sub), pw.pw_uid, pw.pw_gid)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=mx.postfix.test",
                        "-keyout", os.path.join(conf, "key.pem"),
                        "-out", os.path.join(conf, "cert.pem")],
                       check=True, capture_output=True)
        with open(os.path.join(conf, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF.format(addr=addr, port=port))
        with open(os.path.join(conf, "main.cf"), "w") as f:
            f.write(POSTFIX_MAIN_CF.format(dir=self.dir, uid=pw.pw_uid, gid=pw.pw_gid))
        self.conf = conf
        self._postfix("start")
        wait_listening(addr, port, None, "postfix")

    def _postfix(self, verb):
        # postfix writes its complaints to stderr only when it is a terminal.
        cp = subprocess.run(["script", "-qec", "postfix -c %s %s" % (self.conf, verb), "/dev/null"],
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, "postfix %s failed: %s%s\n%s" % (verb, cp.stdout, cp.stderr,
                                                                    self.log())
        return cp

    def messages(self):
        paths = glob.glob(os.path.join(self.dir, "mail", "inbox", "new", "*"))
        out = []
        for p in sorted(paths, key=os.path.getmtime):
            with open(p, "rb") as f:
                out.append(f.read())
        return out

    def wait(self, count=1, timeout=20):
        def enough():
            found = self.messages()
            return found if len(found) >= count else None

        return poll(enough, timeout, what="%d message(s) in Postfix's mailbox" % count)

    def log(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        try:
            self._postfix("stop")
        except AssertionError:
            pass


def postfix_usable():
    return os.geteuid() == 0 and shutil.which("postfix") and shutil.which("script") and \
        _has_user("postfix")


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


# Reading reports.

def parse_message(raw):
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)


def report_parts(raw):
    """A delivery status notification as (message, per-message fields,
    [per-recipient field dicts], the returned original part)."""
    msg = parse_message(raw)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    status = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    assert len(status) == 1, [p.get_content_type() for p in parts]
    blocks = status[0].get_payload()  # compat32: a list of header blocks
    fields = [dict((k.lower(), v) for k, v in b.items()) for b in blocks]
    original = parts[2] if len(parts) > 2 else None
    return msg, fields[0], fields[1:], original


# ---- fixtures ----


@pytest.fixture(scope="session")
def dns(workroot):
    d = DNS(workroot)
    yield d
    d.stop()


def free_port_everywhere():
    """A port free on every receiver address."""
    for _ in range(50):
        port = free_port()
        ok = True
        for addr in (SINK_ADDR, PRIO1_ADDR, PRIO2_ADDR, LIVE_ADDR, IMPLICIT_ADDR, SCRIPT_ADDR,
                     POSTFIX_ADDR):
            with socket.socket() as s:
                try:
                    s.bind((addr, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("no port free on every receiver address")


@pytest.fixture
def remote_port():
    return free_port_everywhere()


@pytest.fixture
def receivers(request, workroot):
    """receivers.sink(addr, port) / .scripted(addr, port, ...) / .postfix(addr,
    port) start a receiver; all are stopped at the end of the test."""
    started = []
    root = os.path.join(workroot, "relay-" + unique_id())
    os.makedirs(root)
    os.chmod(root, 0o755)

    class Factory:
        def sink(self, addr, port, options=()):
            started.append(Sink(root, addr, port, options=options))
            return started[-1]

        def scripted(self, addr, port, **kw):
            started.append(Scripted(addr, port, **kw))
            return started[-1]

        def postfix(self, addr, port):
            started.append(Postfix(root, addr, port))
            return started[-1]

    yield Factory()
    for s in started:
        s.stop()


@pytest.fixture
def relay(tern_factory, dns, remote_port):
    """make(**settings) -> a running ternd that relays to the test domains
    and hosts tern.test with the user SENDER."""

    def make(**settings):
        base = {
            "relay_from": "127.0.0.0/8",
            "dns_server": dns.server,
            "remote_port": str(remote_port),
            "retry_intervals": "1s",
            "queue_lifetime": "1h",
            "max_message_size": "10M",
        }
        base.update(settings)
        t = tern_factory(**base)
        t.start()
        t.add_domain("tern.test")
        t.add_user(SENDER)
        return t

    return make


# ---- talking to ternd ----


def send(tern, rcpts, message, sender=SENDER, mail_params="", rcpt_params=""):
    """One transaction on ternd's SMTP listener; the queue id."""
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<%s>%s" % (sender, mail_params), 250)
        for r in rcpts:
            c.expect("RCPT TO:<%s>%s" % (r, rcpt_params), 250)
        c.expect("DATA", 354)
        c.send(data_block(message))
        r = c.reply()
        assert r.code == 250, r
        return r.text.rsplit(" ", 1)[-1]


def queue_lines(tern):
    return [line for line in tern.ctl_ok("queue", "list").splitlines() if line.strip()]


def wait_queue_empty(tern, timeout=15 * SLOW):
    poll(lambda: not queue_lines(tern), timeout, 0.1, what="an empty queue")


def bounces(tern):
    """The reports (bounces, delay and success reports) SENDER received."""
    return tern.read_messages(SENDER)


def wait_reports(tern, count=1, timeout=15 * SLOW):
    tern.wait_messages(SENDER, count, timeout=timeout)
    return bounces(tern)


def to_lf(b):
    return b.replace(b"\r\n", b"\n")
