"""fault_helpers.py - the broken world of the fault-injection tests.

  Mounts     a small tmpfs as a data_dir (disk full) or as a spool that
             is remounted read-only; both need root.  The `mounts`
             fixture stops every ternd of the test before it unmounts, so
             that no open file keeps a mount busy.
  Filling    fill(dir, leave) writes a filler file until the filesystem is
             full, then gives back LEAVE bytes.
  Peers      BadPeer: a remote MX on ADDR:PORT that misbehaves on its first
             connections and then, if asked, behaves as a plain receiver:
             "silent" accepts and never says a word, "close-after-rcpt"
             drops the connection when DATA comes, "close-in-data" drops it
             half-way through the message, "huge-greeting" sends a reply
             line of HUGE_LINE bytes.  It counts connections and keeps the
             messages it accepted.
"""
import os
import socket
import subprocess
import threading

import pytest

from helpers import IS_ROOT, poll, unique_id

HUGE_LINE = 10 * 1024 * 1024  # bytes in the one reply line of "huge-greeting"


def _run(*argv):
    cp = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, "%s failed: %s%s" % (" ".join(argv), cp.stdout, cp.stderr)


def mount_tmpfs(path, size, owner=None, mode="0755"):
    """A tmpfs of SIZE on PATH, its root owned by OWNER (a pwd entry)."""
    os.makedirs(path, exist_ok=True)
    opts = "size=%s,mode=%s" % (size, mode)
    if owner is not None:
        opts += ",uid=%d,gid=%d" % (owner.pw_uid, owner.pw_gid)
    _run("mount", "-t", "tmpfs", "-o", opts, "tmpfs", path)


def remount(path, readonly):
    """The filesystem mounted on PATH becomes read-only (for root too, and
    for files and directories already open) or writable again."""
    _run("mount", "-o", "remount,%s" % ("ro" if readonly else "rw"), path)


def unmount(path):
    cp = subprocess.run(["umount", path], capture_output=True, text=True, timeout=30)
    if cp.returncode != 0:
        # Something still holds it: detach it anyway, it goes when released.
        subprocess.run(["umount", "-l", path], capture_output=True, timeout=30)


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def fill(directory, leave):
    """Fill DIRECTORY's filesystem with one file, then truncate it so that
    about LEAVE bytes are free again.  The filler's path."""
    path = os.path.join(directory, "filler-" + unique_id())
    chunk = b"\0" * 65536
    with open(path, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    size = os.path.getsize(path)
    os.truncate(path, max(0, size - leave))
    return path


def free_bytes(directory):
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def files_under(directory):
    out = []
    for root, _, names in os.walk(directory):
        out.extend(os.path.join(root, n) for n in names)
    return sorted(out)


@pytest.fixture
def mounts(request, tern_factory):
    """mounts.tmpfs(path, size, owner, mode); teardown stops the test's
    ternd instances (status 0 expected) and unmounts, last first."""
    if not IS_ROOT:
        pytest.skip("mounting a filesystem needs root")
    done = []

    class Mounts:
        def tmpfs(self, path, size="2m", owner=None, mode="0755"):
            mount_tmpfs(path, size, owner, mode)
            done.append(path)
            return path

    yield Mounts()
    for t in getattr(request.node, "tern_instances", []):
        if t.running():
            rc = t.stop()
            if rc != 0:
                t.problems.append("%s: ternd exited with status %d on SIGTERM" % (t.name, rc))
    for path in reversed(done):
        unmount(path)


class BadPeer:
    """A remote MX on ADDR:PORT; the first BAD connections get MODE, the
    rest a plain receiver (or MODE again when BAD is None)."""

    def __init__(self, addr, port, mode, bad=None):
        self.addr, self.port, self.mode, self.bad = addr, port, mode, bad
        self.lock = threading.Lock()
        self.connections = 0
        self.delivered = []  # message bodies accepted with 250
        self.huge_sent = 0  # bytes of the huge line written
        self.stopping = threading.Event()
        self.socks = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((addr, port))
        self.listener.listen(16)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                n = self.connections
                self.connections += 1
                self.socks.append(s)
            bad = self.bad is None or n < self.bad
            threading.Thread(target=self._serve, args=(s, self.mode if bad else "good"),
                             daemon=True).start()

    def _serve(self, s, mode):
        try:
            s.settimeout(120)
            if mode == "silent":
                self.stopping.wait()
                return
            if mode == "huge-greeting":
                self._huge(s)
                return
            self._converse(s, mode)
        except OSError:
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _huge(self, s):
        chunk = b"x" * 65536
        s.sendall(b"220 ")
        sent = 0
        while sent < HUGE_LINE:
            s.sendall(chunk)
            sent += len(chunk)
            with self.lock:
                self.huge_sent = sent
        s.sendall(b"\r\n")
        s.recv(1)  # wait for the peer to give up

    def _converse(self, s, mode):
        f = s.makefile("rb")

        def say(line):
            s.sendall(line.encode() + b"\r\n")

        say("220 mx.script.test ESMTP faulty")
        while True:
            raw = f.readline(4096)
            if not raw:
                return
            verb = raw.split(b" ", 1)[0].strip().upper()
            if verb == b"EHLO":
                say("250-mx.script.test")
                say("250-PIPELINING")
                say("250-8BITMIME")
                say("250 ENHANCEDSTATUSCODES")
            elif verb == b"HELO":
                say("250 mx.script.test")
            elif verb == b"MAIL":
                say("250 2.1.0 Ok")
            elif verb == b"RCPT":
                say("250 2.1.5 Ok")
            elif verb == b"DATA":
                if mode == "close-after-rcpt":
                    return
                say("354 go ahead")
                lines = []
                while True:
                    raw = f.readline(1 << 20)
                    if not raw:
                        return
                    if raw == b".\r\n":
                        break
                    lines.append(raw[1:] if raw.startswith(b".") else raw)
                    if mode == "close-in-data" and len(lines) >= 3:
                        s.shutdown(socket.SHUT_RDWR)
                        return
                with self.lock:
                    self.delivered.append(b"".join(lines))
                say("250 2.0.0 Ok: queued")
            elif verb in (b"RSET", b"NOOP"):
                say("250 2.0.0 Ok")
            elif verb == b"QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("502 5.5.2 Command not recognized")

    def wait_connections(self, count, timeout=15):
        poll(lambda: self.connections >= count, timeout, 0.05,
             what="%d connection(s) at the %s peer" % (count, self.mode))

    def wait_delivered(self, count=1, timeout=15):
        return poll(lambda: list(self.delivered) if len(self.delivered) >= count else None,
                    timeout, 0.1, what="%d delivery(ies) at the peer" % count)

    def stop(self):
        self.stopping.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def bad_peers():
    """bad_peers(addr, port, mode, bad=None) -> a running BadPeer, stopped at
    the end of the test."""
    started = []

    def make(addr, port, mode, bad=None):
        started.append(BadPeer(addr, port, mode, bad))
        return started[-1]

    yield make
    for p in started:
        p.stop()
