"""measure.py - the measurements: timed smtp-source runs, CPU time of a
server's processes, idle sessions and their memory, the disk's fsync rate.

A run is smtp-source sending N messages to one server: the acceptance time
is when smtp-source has had its last 250 (it waits for the reply to each
DATA before it sends more on that session), the end-to-end time is when the
server's smtp-sink has counted all N.  Both are measured from the same
start, in the same run.
"""
import os
import shutil
import socket
import subprocess
import threading
import time

from services import RECIPIENT, SENDER, BenchError

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def smtp_source_argv(ip, port, sessions, n, size, reuse):
    """The smtp-source command for one run.  -d keeps each session's
    connection for its next message instead of one connection per message."""
    argv = ["smtp-source", "-s", str(sessions), "-m", str(n), "-l", str(size),
            "-f", SENDER, "-t", RECIPIENT]
    if reuse:
        argv.append("-d")
    return argv + ["%s:%d" % (ip, port)]


def proc_stat(pid):
    """(ppid, utime+stime, cutime+cstime in seconds, comm) of PID, or None.
    The fields follow the last ')' because comm may hold spaces or parens."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return ppid, own, children, comm


def children_of(ppid):
    """PIDs whose parent is PPID."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st and st[0] == ppid:
            found.append(int(name))
    return found


class TernCpu:
    """CPU seconds used by ternd: every thread counts in its /proc stat."""

    def __init__(self, pid):
        self.pid = pid

    def sample(self):
        st = proc_stat(self.pid)
        if st is None:
            raise BenchError("ternd (pid %d) is gone" % self.pid)
        return st[1]


class PostfixCpu:
    """CPU seconds used by a Postfix instance: the master's own time, the
    time of the children it has reaped (cutime/cstime), and the time of its
    children still running.  A child that exits between two samples moves
    from the last term to the second, so differences stay exact."""

    def __init__(self, master_pid):
        self.pid = master_pid

    def sample(self):
        st = proc_stat(self.pid)
        if st is None:
            raise BenchError("Postfix master (pid %d) is gone" % self.pid)
        total = st[1] + st[2]
        for child in children_of(self.pid):
            cst = proc_stat(child)
            if cst:
                total += cst[1]
        return total


class Run:
    """The outcome of one smtp-source run against one target."""

    def __init__(self, target, cfg, rep, n):
        self.target, self.cfg, self.rep, self.n = target, cfg, rep, n
        self.accept_s = None  # smtp-source wall time
        self.e2e_s = None  # until the sink had all N, when waited for
        self.cpu_s = None  # server CPU over the whole run
        self.note = ""

    def rate(self, seconds):
        return self.n / seconds if seconds else None


def wait_sink(sink, want, t0, stall, deadline_s):
    """Wait until SINK has counted WANT; the seconds since T0, or None when
    no new message arrived for STALL seconds or DEADLINE_S passed."""
    last, last_change = sink.count(), time.monotonic()
    while True:
        now = time.monotonic()
        got = sink.count()
        if got >= want:
            return now - t0, got
        if got != last:
            last, last_change = got, now
        if now - last_change > stall or now - t0 > deadline_s:
            return None, got
        time.sleep(0.005)


def run_source(run, ip, port, sessions, size, reuse, sink=None, cpu=None,
               e2e_stall=None, timeout=600):
    """One timed smtp-source run; fills RUN.  With SINK and E2E_STALL, also
    waits for the sink to count the N messages (end-to-end)."""
    argv = smtp_source_argv(ip, port, sessions, run.n, size, reuse)
    base = sink.count() if sink else 0
    c0 = cpu.sample() if cpu else None
    t0 = time.monotonic()
    try:
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        run.note = "smtp-source timed out after %ds" % timeout
        return run
    run.accept_s = time.monotonic() - t0
    if cp.returncode != 0:
        run.accept_s = None
        run.note = "smtp-source exit %d: %s" % (cp.returncode,
                                                 (cp.stderr or cp.stdout).strip()[-300:])
        return run
    if sink is not None and e2e_stall:
        run.e2e_s, got = wait_sink(sink, base + run.n, t0, e2e_stall, timeout)
        if run.e2e_s is None:
            run.note = "sink got %d of %d" % (got - base, run.n)
    if cpu is not None:
        run.cpu_s = cpu.sample() - c0
    return run


def settle(sinks, postfix, timeout=120):
    """Wait until Postfix's queue is empty and no sink has counted anything
    for 0.3 s, so that one run's deliveries do not overlap the next run."""
    deadline = time.monotonic() + timeout
    counts = [s.count() for s in sinks]
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = [s.count() for s in sinks]
        if now != counts:
            counts, still_since = now, time.monotonic()
            continue
        if postfix.queued() == 0 and time.monotonic() - still_since >= 0.3:
            return True
    return False


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    """Proportional set size: shared pages divided among their users."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _read_reply(sock, buf):
    """Read one SMTP reply (RFC 5321 4.2: last line has a space after the
    code); return (code, rest of the buffer)."""
    while True:
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            if len(line) >= 4 and line[3:4] == b" ":
                return int(line[:3]), buf
            if len(line) == 3:
                return int(line), buf
        data = sock.recv(4096)
        if not data:
            raise BenchError("connection closed while waiting for a reply")
        buf += data


def open_idle_sessions(ip, port, count, batch=100):
    """COUNT sessions to ip:port, each greeted and past EHLO, left open.
    Opened in batches no larger than a listen backlog, so that no SYN is
    dropped and retried a second later.  The list of sockets."""
    socks = []
    try:
        while len(socks) < count:
            group = []
            for _ in range(min(batch, count - len(socks))):
                s = socket.create_connection((ip, port), timeout=30)
                group.append(s)
                socks.append(s)
            for s in group:
                code, _ = _read_reply(s, b"")
                if code != 220:
                    raise BenchError("greeting %d from %s:%d" % (code, ip, port))
                s.sendall(b"EHLO idle.bench.test\r\n")
            for s in group:
                code, _ = _read_reply(s, b"")
                if code != 250:
                    raise BenchError("EHLO answered %d by %s:%d" % (code, ip, port))
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def fsync_rate(directory, seconds, threads=1):
    """New files per second that can be created, written (4 KiB) and
    fsynced in DIRECTORY by THREADS threads at once: what a queue that
    writes one file per message pays for each message."""
    os.makedirs(directory, exist_ok=True)
    block = b"x" * 4096
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def loop(i):
        n = 0
        while time.monotonic() < stop:
            path = os.path.join(directory, "f%d-%d" % (i, n))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, block)
                os.fsync(fd)
            finally:
                os.close(fd)
            n += 1
        counts[i] = n

    t0 = time.monotonic()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - t0
    shutil.rmtree(directory, ignore_errors=True)
    return sum(counts) / elapsed
