"""peers.py - starting and stopping the outside programs that stand in for
the rest of the internet: dnsmasq (the DNS holding test domains' MX records)
and Postfix's smtp-sink (a receiving MTA).

Shared by the relay tests (relay_helpers.py) and the benchmark
(bench/services.py, which puts this directory on its import path), so it
uses the standard library only: no pytest, nothing of the test fixtures.
Each caller picks the port and the records; this module knows the command
lines, waits until the program listens, and stops it again.  Failures are
PeerError, with the program's exit status or what it did not do in time.
"""
import os
import signal
import socket
import subprocess
import time

# The user dnsmasq and smtp-sink drop to when started as root.
PEER_USER = "nobody"


class PeerError(Exception):
    """A peer exited at start or did not listen in time."""


def start_process(argv, log_path):
    """ARGV in a session of its own (a signal to the caller's process group
    never reaches it), stdin closed, stdout and stderr appended to
    LOG_PATH.  The Popen."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc, timeout=10):
    """SIGTERM, then SIGKILL after TIMEOUT seconds; the exit status (None
    when PROC is None)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_listening(addr, port, proc, what, timeout=10, banner=False):
    """Wait until ADDR:PORT takes a TCP connection (with BANNER: greets with
    220, and is sent QUIT); PeerError when PROC (may be None) exits first
    or after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise PeerError("%s exited with status %d at start" % (what, proc.returncode))
        try:
            with socket.create_connection((addr, port), timeout=2) as s:
                if not banner:
                    return
                greeting = s.recv(512)
                s.sendall(b"QUIT\r\n")
                s.recv(512)
                if greeting.startswith(b"220"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise PeerError("%s on %s:%d did not %s within %ds" % (
                what, addr, port, "greet" if banner else "listen", timeout))
        time.sleep(0.05)


class Dnsmasq:
    """dnsmasq answering for every name under .test on ADDR:PORT (UDP and
    TCP) from RECORDS (dnsmasq options: --mx-host=, --host-record=, ...):
    no upstream, no /etc/hosts, answers with time to live TTL.  EXTRA are
    more options (--server=, --user=).  Its output goes to LOG_PATH."""

    def __init__(self, log_path, port, records, addr="127.0.0.1", ttl=1, extra=(),
                 timeout=10):
        self.addr, self.port, self.log = addr, port, log_path
        self.argv = ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
                     "--conf-file=/dev/null", "--pid-file=", "--port=%d" % port,
                     "--listen-address=%s" % addr, "--bind-interfaces", "--local=/test/",
                     "--local-ttl=%d" % ttl] + list(extra) + list(records)
        self.proc = start_process(self.argv, log_path)
        try:
            wait_listening(addr, port, self.proc, "dnsmasq", timeout)
        except PeerError:
            self.stop()
            raise

    @property
    def server(self):
        """The value of ternd's dns_server directive."""
        return "%s:%d" % (self.addr, self.port)

    def stop(self):
        return stop_process(self.proc)


class SmtpSink:
    """Postfix's smtp-sink on ADDR:PORT with OPTIONS (-d DIR to dump each
    transaction, -c to count, -m for more sessions...) and a listen backlog
    of BACKLOG; as root it runs as PEER_USER.  Its output goes to LOG_PATH.
    BANNER waits for its greeting, not only for the port."""

    def __init__(self, log_path, addr, port, options=(), backlog=64, timeout=10, banner=False):
        self.addr, self.port, self.log = addr, port, log_path
        self.argv = ["smtp-sink"] + list(options)
        if os.geteuid() == 0:
            self.argv += ["-u", PEER_USER]  # smtp-sink refuses to keep root
        self.argv += ["%s:%d" % (addr, port), str(backlog)]
        self.proc = start_process(self.argv, log_path)
        try:
            wait_listening(addr, port, self.proc, "smtp-sink", timeout, banner)
        except PeerError:
            self.stop()
            raise

    def stop(self):
        return stop_process(self.proc)
