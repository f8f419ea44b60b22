"""bench.py - tern against a private Postfix, side by side, in one run.

Called by bench/run.sh (`make bench`) once Postfix and dnsmasq are
installed.  In a temporary directory it starts two identical smtp-sinks (one
per server, so that a late delivery of one server is never counted for the
other), a dnsmasq holding the bench domain's MX, a private Postfix relaying
everything to its sink, and ternd relaying through the MX to its sink.  Then:

1. the disk's rate of "create a file, write 4 KiB, fsync" (1 and 20 threads);
2. memory: ternd's RSS with BENCH_IDLE idle sessions after EHLO, and the
   memory of Postfix's smtpd processes per idle session;
3. throughput: for 1, 20 and 100 sessions, 1 KB and 100 KB, a new connection
   per message and reused connections, REPS repetitions: smtp-source straight
   into smtp-sink (the protocol ceiling), then tern and Postfix, alternating
   which goes first; acceptance and end-to-end rates and CPU per message;
4. the API against SMTP (api.py): the same messages from one user over POST
   /v1/messages and over submission with STARTTLS and AUTH, both on kept
   connections; rates, ternd's CPU per message and the ratio API/SMTP.

Medians go to the terminal and to docs/performance.md with the machine facts
and the exact commands.  Every process started is stopped on the way out,
also on an error or a signal.

Environment: BENCH_N messages per run (default 2000; 1-session runs send a
quarter), BENCH_REPS (3), BENCH_IDLE idle sessions (10000), BENCH_QUICK=1
(smoke run: N=100, 1 repetition, 1000 idle sessions; report written to
build/bench/performance-quick.md), BENCH_OUT (report path), BENCH_KEEP=1
(keep the temporary directory), BENCH_TMPDIR (where the work directory is made;
/var/tmp), BENCH_ONLY (comma-separated parts to run:
disk, memory, throughput, api; default all), BENCH_API_N, BENCH_API_C and
BENCH_API_ROUNDS (see api.py), TERN_BUILD (directory holding ternd).
"""
import os
import resource
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import api  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
import services  # noqa: E402
from services import POSTFIX_IP, TERN_IP, SINK_IP, BenchError  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SESSIONS = (1, 20, 100)
SIZES = (1024, 100 * 1024)
DEFAULT_N, DEFAULT_REPS, DEFAULT_IDLE = 2000, 3, 10000


class Settings:
    """What to run, from the environment."""

    def __init__(self):
        env = os.environ
        self.quick = env.get("BENCH_QUICK") == "1"
        self.n = int(env.get("BENCH_N") or (100 if self.quick else DEFAULT_N))
        self.reps = int(env.get("BENCH_REPS") or (1 if self.quick else DEFAULT_REPS))
        self.idle = int(env.get("BENCH_IDLE") or (1000 if self.quick else DEFAULT_IDLE))
        self.reduced = not self.quick and (self.n < DEFAULT_N or self.reps < DEFAULT_REPS
                                           or self.idle < DEFAULT_IDLE)
        self.postfix_idle = 20 if self.quick else 100
        self.fsync_s = 0.5 if self.quick else 2.0
        # How long tern's first run waits for a relayed message before it
        # calls the relay absent, and how long any run waits without progress.
        self.relay_probe_s = 5 if self.quick else 15
        self.stall_s = 30
        default_out = ("build/bench/performance-quick.md" if self.quick
                       else "docs/performance.md")
        self.out = os.path.join(REPO, env.get("BENCH_OUT") or default_out)
        self.keep = env.get("BENCH_KEEP") == "1"
        self.tmpdir = env.get("BENCH_TMPDIR") or "/var/tmp"
        self.build = env.get("TERN_BUILD") or os.path.join(REPO, "build")
        self.configs = [(s, z, r) for s in SESSIONS for z in SIZES for r in (False, True)]
        self.api_n = int(env.get("BENCH_API_N") or (100 if self.quick else 2000))
        self.api_conc = int(env.get("BENCH_API_C") or (4 if self.quick else 20))
        self.api_rounds = int(env.get("BENCH_API_ROUNDS") or (2 if self.quick else 5))
        self.api_timeout = 600
        if self.api_conc < 1 or self.api_n < self.api_conc or self.api_rounds < 1:
            raise SystemExit("bench: BENCH_API_C and BENCH_API_ROUNDS must be at least 1, "
                             "BENCH_API_N at least BENCH_API_C")
        self.only = set((env.get("BENCH_ONLY") or "disk,memory,throughput,api").split(","))
        unknown = self.only - {"disk", "memory", "throughput", "api"}
        if unknown:
            raise SystemExit("bench: BENCH_ONLY: unknown part(s) %s" % ",".join(sorted(unknown)))

    def messages(self, sessions):
        """Messages per run: one session is slow, so it sends a quarter."""
        return self.n if sessions > 1 else max(10, self.n // 4)


def raise_fd_limit():
    """10,000 idle sessions need as many descriptors here and in ternd,
    which inherits the limit."""
    want = 65536
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def on_signal(signum, frame):
    raise SystemExit(128 + signum)


def idle_memory(st, tern, postfix, ctx):
    """RSS of ternd with st.idle sessions; Postfix smtpd memory per session."""
    before = measure.rss_kib(tern.pid)
    print("memory: opening %d idle sessions to ternd" % st.idle, flush=True)
    try:
        socks = measure.open_idle_sessions(TERN_IP, tern.port, st.idle)
    except (BenchError, OSError) as e:
        ctx["notes"].append("ternd idle sessions: %s" % e)
        print("memory: ternd: %s" % e)
    else:
        time.sleep(0.5)
        after = measure.rss_kib(tern.pid)
        measure.close_all(socks)
        ctx["mem"]["tern"] = dict(sessions=st.idle, before=before, after=after)
        print("memory: ternd RSS %.1f MiB idle, %.1f MiB with %d sessions" % (
            before / 1024, after / 1024, st.idle), flush=True)
    master = postfix.master_pid()
    try:
        socks = measure.open_idle_sessions(POSTFIX_IP, postfix.port, st.postfix_idle)
    except (BenchError, OSError) as e:
        ctx["notes"].append("Postfix idle sessions: %s" % e)
        print("memory: Postfix: %s" % e)
        return
    time.sleep(0.5)
    smtpds = [p for p in measure.children_of(master)
              if (measure.proc_stat(p) or (0, 0, 0, ""))[3] == "smtpd"]
    rss = sum(measure.rss_kib(p) for p in smtpds)
    pss = sum(measure.pss_kib(p) for p in smtpds)
    measure.close_all(socks)
    ctx["mem"]["postfix"] = dict(sessions=st.postfix_idle, processes=len(smtpds),
                                 rss=rss, pss=pss)
    print("memory: Postfix %d sessions: %d smtpd processes, RSS %.1f MiB, PSS %.1f MiB" % (
        st.postfix_idle, len(smtpds), rss / 1024, pss / 1024), flush=True)


def throughput(st, svc, ctx):
    """The matrix of runs; appends measure.Run objects to ctx["results"]."""
    tern, postfix = svc["tern"], svc["postfix"]
    targets = {
        "tern": (TERN_IP, tern.port, svc["tern_sink"], measure.TernCpu(tern.pid)),
        "postfix": (POSTFIX_IP, postfix.port, svc["postfix_sink"],
                    measure.PostfixCpu(postfix.master_pid())),
    }
    sinks = [svc["tern_sink"], svc["postfix_sink"]]
    total = st.reps * len(st.configs)
    done = 0
    for rep in range(st.reps):
        for i, cfg in enumerate(st.configs):
            sessions, size, reuse = cfg
            n = st.messages(sessions)
            done += 1
            label = "[%d/%d] rep %d, %d sessions, %s, %s connections" % (
                done, total, rep + 1, sessions, report.fmt_size(size),
                "reused" if reuse else "new")
            print(label, flush=True)
            ceiling = measure.Run("sink", cfg, rep, n)
            measure.run_source(ceiling, SINK_IP, svc["tern_sink"].port, sessions, size, reuse)
            ctx["results"].append(ceiling)
            print("    smtp-sink alone %8s msg/s %s" % (
                report.fmt_rate(ceiling.rate(ceiling.accept_s)), ceiling.note), flush=True)
            order = ["tern", "postfix"] if (rep + i) % 2 == 0 else ["postfix", "tern"]
            for target in order:
                measure.settle(sinks, postfix)
                ip, port, sink, cpu = targets[target]
                run = measure.Run(target, cfg, rep, n)
                stall = st.stall_s
                if target == "tern":
                    if ctx["tern_relay"] is False:
                        stall = None
                    elif ctx["tern_relay"] is None:
                        stall = st.relay_probe_s
                base = sink.count()
                measure.run_source(run, ip, port, sessions, size, reuse, sink, cpu, stall)
                if target == "tern" and stall and ctx["tern_relay"] is None and run.accept_s:
                    if run.e2e_s is None and sink.count() == base:
                        ctx["tern_relay"] = False
                        run.note = "relay not available"
                        ctx["notes"].append(
                            "tern end-to-end: n/a (relay not available): no message reached "
                            "smtp-sink within %ds of the first run's acceptance" % st.relay_probe_s)
                    else:
                        ctx["tern_relay"] = True
                ctx["results"].append(run)
                print("    %-7s accept %8s msg/s, end-to-end %8s msg/s, CPU %s ms/msg %s" % (
                    target, report.fmt_rate(run.rate(run.accept_s)),
                    report.fmt_rate(run.rate(run.e2e_s)),
                    report.fmt_ms(run.cpu_s / n if run.cpu_s is not None else None),
                    run.note), flush=True)


def start_services(st, root, cleanup):
    svc = {}
    svc["tern_sink"] = services.Sink(root, "sink-tern", cleanup)
    svc["postfix_sink"] = services.Sink(root, "sink-postfix", cleanup)
    svc["dns"] = services.Dns(root, cleanup)
    svc["postfix"] = services.PostfixInstance(root, svc["postfix_sink"].port, cleanup)
    svc["tern"] = services.Tern(root, st.build, svc["dns"].port, svc["tern_sink"].port, cleanup)
    return svc


def main():
    st = Settings()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    raise_fd_limit()
    # /var/tmp rather than /tmp: /tmp is often a tmpfs, where fsync costs
    # nothing and the comparison would say nothing about a disk.
    root = tempfile.mkdtemp(prefix="tern-bench-", dir=st.tmpdir)
    # The daemons run as postfix and nobody: they must reach their dirs.
    os.chmod(root, 0o755)
    print("bench: N=%d, %d repetition(s), work directory %s" % (st.n, st.reps, root), flush=True)
    ctx = dict(results=[], api=[], mem={}, fsync={}, notes=[], tern_relay=None, reps=st.reps,
               configs=st.configs, settings=st, root=root)
    cleanup = services.Cleanup()
    ok = False
    try:
        ctx["facts"] = report.machine_facts(root)
        # Taken before anything of the bench runs: load then is other work,
        # which shares the CPUs and the disk with the measurement.
        ctx["load_start"] = os.getloadavg()[0]
        if ctx["load_start"] > 0.5:
            ctx["notes"].append("the machine was busy before the run (load average %.1f on %d "
                                "CPUs): other work shared the CPUs and the disk, so rates are "
                                "lower and noisier than on an idle machine" % (
                                    ctx["load_start"], len(os.sched_getaffinity(0))))
        fstype = report.mount_of(root)[1]
        if fstype in ("tmpfs", "ramfs"):
            ctx["notes"].append("the work directory is on %s: fsync writes nothing to a disk, "
                                "so these numbers do not show a durable server" % fstype)
        if "disk" in st.only:
            for threads in (1, 20):
                ctx["fsync"][threads] = measure.fsync_rate(os.path.join(root, "fsync"),
                                                           st.fsync_s, threads)
            print("disk: %s new files fsynced/s (1 thread), %s (20 threads)" % (
                report.fmt_rate(ctx["fsync"][1]), report.fmt_rate(ctx["fsync"][20])), flush=True)
        svc = start_services(st, root, cleanup)
        ctx["svc"] = svc
        if "memory" in st.only:
            idle_memory(st, svc["tern"], svc["postfix"], ctx)
        if "throughput" in st.only:
            throughput(st, svc, ctx)
        if "api" in st.only:
            api.run_api(st, svc, ctx)
        ok = True
    except BenchError as e:
        print("bench: %s" % e, file=sys.stderr)
    finally:
        cleanup.run()
        if ok:
            text = report.text_summary(ctx)
            print("\n" + text)
            report.write_markdown(st.out, ctx)
            print("\nbench: report written to %s" % os.path.relpath(st.out, REPO))
        if st.keep:
            print("bench: work directory kept: %s" % root)
        elif ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            # Keep the logs for a look; drop the spools, which can be large.
            for d in ("tern/data", "postfix/queue"):
                shutil.rmtree(os.path.join(root, d), ignore_errors=True)
            print("bench: logs kept in %s" % root)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
