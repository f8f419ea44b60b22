"""services.py - the processes a benchmark run starts, and stops again.

Sink: Postfix's smtp-sink, the receiving end of both relays, counting the
messages it has taken ("-c" prints "sess=N quit=N mesg=N" as it goes).
Dns: a dnsmasq that answers the MX of the bench domain with the sink's
address, for tern's MX routing.  PostfixInstance: a private Postfix with its
own config_directory, queue_directory and data_directory in the run's
temporary directory, listening only on its own loopback address (nothing on
port 25, the system instance untouched).  Tern: build/ternd with a
configuration written here.

Every start registers its stop with a Cleanup, which the caller runs in a
finally block, so that an error or a signal leaves no process behind.
smtp-sink and dnsmasq are started, waited for and stopped by the integration
tests' peers.py (tests/integration, put on the import path here), so that the
benchmark's peers behave as the relay tests' do.
"""
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(1, os.path.join(REPO, "tests", "integration"))

from peers import (Dnsmasq, PeerError, SmtpSink, start_process, stop_process,  # noqa: E402
                   wait_listening)

SINK_IP = "127.0.0.9"
POSTFIX_IP = "127.0.0.10"
TERN_IP = "127.0.0.11"
DNS_IP = "127.0.0.1"
BENCH_DOMAIN = "dest.bench.test"
SENDER = "sender@bench.test"
RECIPIENT = "rcpt@" + BENCH_DOMAIN
DAEMON_USER = "nobody"

_ports_given = set()


class BenchError(Exception):
    """A service could not be started or a run could not be completed."""


class Cleanup:
    """Stop functions, run newest first; each runs once even if another fails."""

    def __init__(self):
        self.stops = []

    def add(self, what, stop):
        self.stops.append((what, stop))

    def run(self):
        while self.stops:
            what, stop = self.stops.pop()
            try:
                stop()
            except Exception as e:  # keep stopping the others
                print("bench: stopping %s: %s" % (what, e))


def free_port(ip):
    """A TCP port free on IP, below the ephemeral range so that client
    connections cannot take it before the service binds it."""
    for _ in range(500):
        port = random.randint(20000, 32000)
        if port in _ports_given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((ip, port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise BenchError("no free port on %s" % ip)


def wait_banner(ip, port, timeout, proc=None, what="service"):
    """Wait until ip:port greets with 220, then QUIT; BenchError after TIMEOUT."""
    try:
        wait_listening(ip, port, proc, what, timeout, banner=True)
    except PeerError as e:
        raise BenchError(str(e)) from None


class Sink:
    """smtp-sink on SINK_IP:port, throwing messages away and counting them."""

    COUNT_RE = re.compile(rb"mesg=(\d+)")

    def __init__(self, root, name, cleanup):
        self.port = free_port(SINK_IP)
        self.out = os.path.join(root, name + ".out")
        # -c: running counters on stdout; -m: up to 2000 simultaneous
        # sessions (default 256).  It runs as nobody (DAEMON_USER).
        try:
            self.peer = SmtpSink(self.out, SINK_IP, self.port, ["-c", "-m", "2000"],
                                 backlog=1024, banner=True)
        except PeerError as e:
            raise BenchError("%s: %s" % (name, e)) from None
        self.argv, self.proc = self.peer.argv, self.peer.proc
        cleanup.add(name, self.peer.stop)

    def count(self):
        """Messages received so far (the last counter line printed)."""
        with open(self.out, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256))
            found = self.COUNT_RE.findall(f.read())
        return int(found[-1]) if found else 0


class Dns:
    """dnsmasq answering the MX of BENCH_DOMAIN with the sink's address."""

    def __init__(self, root, cleanup):
        self.port = free_port(DNS_IP)
        self.log = os.path.join(root, "dnsmasq.log")
        records = ["--mx-host=%s,mx.%s,10" % (BENCH_DOMAIN, BENCH_DOMAIN),
                   "--host-record=mx.%s,%s" % (BENCH_DOMAIN, SINK_IP)]
        try:
            self.peer = Dnsmasq(self.log, self.port, records, addr=DNS_IP, ttl=3600,
                                extra=["--user=%s" % DAEMON_USER])
        except PeerError as e:
            raise BenchError(str(e)) from None
        self.argv, self.proc = self.peer.argv, self.peer.proc
        cleanup.add("dnsmasq", self.peer.stop)


MASTER_CF = """\
# A private instance: no chroot (its queue is in a temporary directory), and
# smtpd only on its own loopback address.
{ip}:{port} inet n - n - - smtpd
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
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
# A private Postfix instance for the benchmark: Debian's defaults except
# where it must differ to run beside the system (own directories, own
# address) and to relay everything to smtp-sink.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {maillog}
maillog_file_prefixes = {maillog}
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
# Postfix accepts only addresses of an interface here, and 127.0.0.10 is
# not one (the loopback interface holds 127.0.0.1/8): smtpd's address is
# in master.cf instead, and no service uses inet_interfaces.
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [{sink_ip}]:{sink_port}
smtp_tls_security_level = none
smtpd_tls_security_level = none
default_process_limit = 200
biff = no
append_dot_mydomain = no
readme_directory = no
"""


class PostfixInstance:
    """A private Postfix: config in ROOT/postfix/etc, queue and data beside it."""

    QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")

    def __init__(self, root, sink_port, cleanup):
        base = os.path.join(root, "postfix")
        self.config_dir = os.path.join(base, "etc")
        self.queue_dir = os.path.join(base, "queue")
        self.data_dir = os.path.join(base, "data")
        self.maillog = os.path.join(base, "maillog")
        # postfix check creates the queue's subdirectories and data_dir; the
        # queue directory itself belongs to root, as in /var/spool/postfix.
        for d in (base, self.config_dir, self.queue_dir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        self.port = free_port(POSTFIX_IP)
        values = dict(queue=self.queue_dir, data=self.data_dir, maillog=self.maillog,
                      ip=POSTFIX_IP, port=self.port, sink_ip=SINK_IP, sink_port=sink_port)
        self.main_cf = MAIN_CF.format(**values)
        self.master_cf = MASTER_CF.format(**values)
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write(self.main_cf)
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(self.master_cf)
        self.postfix("check")
        self.started = False
        cleanup.add("postfix", self.stop)
        self.postfix("start")
        self.started = True
        wait_banner(POSTFIX_IP, self.port, 30, None, "postfix smtpd")

    def postfix(self, *args):
        argv = ["postfix", "-c", self.config_dir] + list(args)
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if cp.returncode != 0:
            # postfix writes its reasons to maillog_file, not to a pipe.
            raise BenchError("%s failed (%d): %s%s%s" % (" ".join(argv), cp.returncode,
                                                          cp.stdout, cp.stderr, self.log_tail()))
        return cp.stdout + cp.stderr

    def log_tail(self, lines=10):
        try:
            with open(self.maillog, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def queued(self):
        """Messages in the instance's queues (files under the queue dirs)."""
        n = 0
        for q in self.QUEUES:
            for _, _, files in os.walk(os.path.join(self.queue_dir, q)):
                n += len(files)
        return n

    def stop(self):
        if not self.started:
            return
        pid = self.master_pid()
        try:
            self.postfix("stop")
        except (BenchError, subprocess.TimeoutExpired):
            subprocess.run(["postfix", "-c", self.config_dir, "abort"], capture_output=True)
        deadline = time.monotonic() + 15
        while pid and os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid and os.path.exists("/proc/%d" % pid):
            os.kill(pid, signal.SIGKILL)
        self.started = False


class Tern:
    """build/ternd with its own data_dir, listening on TERN_IP only: SMTP
    (relay_from, no AUTH) for smtp-source, and submission (STARTTLS, AUTH,
    with the self-signed pair ternd makes) and http for the API benchmark."""

    def __init__(self, root, build, dns_port, sink_port, cleanup):
        self.dir = os.path.join(root, "tern")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.ternd = os.path.join(build, "ternd")
        self.ternctl = os.path.join(build, "ternctl")
        self.conf = os.path.join(self.dir, "tern.conf")
        self.log = os.path.join(self.dir, "ternd.log")
        self.port = free_port(TERN_IP)
        self.submission_port = free_port(TERN_IP)
        self.http_port = free_port(TERN_IP)
        self.config = "\n".join([
            "hostname tern.bench.test",
            "data_dir %s" % os.path.join(self.dir, "data"),
            "user %s" % DAEMON_USER,
            "listen smtp %s:%d" % (TERN_IP, self.port),
            "listen submission %s:%d" % (TERN_IP, self.submission_port),
            "listen http %s:%d" % (TERN_IP, self.http_port),
            "relay_from 127.0.0.0/8",
            "dns_server %s:%d" % (DNS_IP, dns_port),
            "remote_port %d" % sink_port,
            "max_connections 20000",
            "max_connections_per_ip 100000",
            "max_connection_rate 100000",
        ]) + "\n"
        with open(self.conf, "w") as f:
            f.write(self.config)
        self.proc = start_process([self.ternd, "-c", self.conf], self.log)
        cleanup.add("ternd", lambda: stop_process(self.proc, 15))
        try:
            wait_banner(TERN_IP, self.port, 30, self.proc, "ternd")
        except BenchError as e:
            with open(self.log, errors="replace") as f:
                raise BenchError("%s; its log ends:\n%s" % (e, "".join(f.readlines()[-10:])))

    @property
    def pid(self):
        return self.proc.pid

    def ctl(self, *args, stdin=None):
        """ternctl -c tern.conf ARGS (STDIN: text on its standard input);
        its output, or BenchError with its reason."""
        argv = [self.ternctl, "-c", self.conf] + list(args)
        try:
            cp = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BenchError("%s: %s" % (" ".join(argv[3:]), e)) from None
        if cp.returncode != 0:
            raise BenchError("ternctl %s: exit %d: %s" % (" ".join(args), cp.returncode,
                                                          (cp.stderr or cp.stdout).strip()))
        return cp.stdout
