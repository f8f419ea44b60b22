"""report.py - the benchmark's results as tables, and docs/performance.md.

Medians over the repetitions; a rate is messages per second, a ratio is
tern's value divided by Postfix's (for rates higher is better for tern, for
CPU and memory lower is).  Machine facts come from /proc and uname so that a
reader can tell what the numbers were measured on.
"""
import os
import platform
import statistics
import subprocess
import time

from measure import smtp_source_argv
from services import POSTFIX_IP, SINK_IP, TERN_IP


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_rate(v):
    return "n/a" if v is None else ("%.0f" % v if v >= 10 else "%.1f" % v)


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    r = a / b
    # Two decimals for rates; two significant digits for the tiny ratios
    # that memory per session gives, which would otherwise all read 0.00.
    return ("%.2f×" % r) if r >= 0.1 else ("%.2g×" % r)


def fmt_ms(v):
    return "n/a" if v is None else "%.3f" % (v * 1000)


def fmt_size(size):
    return "%d KB" % (size // 1024) if size >= 1024 else "%d B" % size


def md_table(header, rows):
    """A Markdown table, columns padded so that it also reads as text."""
    cells = [header] + rows
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]

    def line(r):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


# machine facts


def _first(path, prefix):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def mount_of(path):
    """(mount point, filesystem type, device, options) holding PATH, from
    /proc/self/mountinfo: the longest mount point that prefixes it."""
    path = os.path.realpath(path)
    best = ("/", "unknown", "unknown", "")
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, right = line.split(" - ", 1)
                fields, rest = left.split(), right.split()
                mnt = fields[4].replace("\\040", " ")
                inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best[0]):
                    best = (mnt, rest[0], rest[1], fields[5])
    except OSError:
        pass
    return best


def command_output(argv):
    try:
        env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        return cp.stdout.strip() if cp.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_facts(tmpdir):
    mnt, fstype, dev, opts = mount_of(tmpdir)
    mem_kib = int(_first("/proc/meminfo", "MemTotal").split()[0] or 0)
    commit = command_output(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    if command_output(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    return [
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("CPUs (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU model", _first("/proc/cpuinfo", "model name")),
        ("memory", "%.1f GiB" % (mem_kib / 1048576)),
        ("kernel", "%s %s" % (platform.system(), platform.release())),
        ("temp dir filesystem", "%s on %s (mounted at %s, %s)" % (fstype, dev, mnt, opts)),
        ("tern", "commit %s" % commit),
        ("Postfix", command_output(["postconf", "-d", "-h", "mail_version"]) or "unknown"),
    ]


# tables


def throughput_rows(results, configs):
    rows = []
    for cfg in configs:
        sessions, size, reuse = cfg
        m = {}
        for target in ("sink", "tern", "postfix"):
            runs = [r for r in results if r.target == target and r.cfg == cfg]
            m[target, "acc"] = median([r.rate(r.accept_s) for r in runs])
            m[target, "e2e"] = median([r.rate(r.e2e_s) for r in runs])
        rows.append([sessions, fmt_size(size), "reused" if reuse else "new",
                     fmt_rate(m["sink", "acc"]),
                     fmt_rate(m["tern", "acc"]), fmt_rate(m["postfix", "acc"]),
                     fmt_ratio(m["tern", "acc"], m["postfix", "acc"]),
                     fmt_rate(m["tern", "e2e"]), fmt_rate(m["postfix", "e2e"]),
                     fmt_ratio(m["tern", "e2e"], m["postfix", "e2e"])])
    return rows


THROUGHPUT_HEADER = ["sessions", "size", "connection", "smtp-sink alone",
                     "tern accept", "Postfix accept", "tern/Postfix",
                     "tern end-to-end", "Postfix end-to-end", "tern/Postfix"]


def cpu_rows(results, configs):
    rows = []
    for cfg in configs:
        sessions, size, reuse = cfg
        per = {}
        for target in ("tern", "postfix"):
            runs = [r for r in results if r.target == target and r.cfg == cfg]
            per[target] = median([r.cpu_s / r.n for r in runs if r.cpu_s is not None])
        rows.append([sessions, fmt_size(size), "reused" if reuse else "new",
                     fmt_ms(per["tern"]), fmt_ms(per["postfix"]),
                     fmt_ratio(per["tern"], per["postfix"])])
    return rows


CPU_HEADER = ["sessions", "size", "connection", "tern ms/msg", "Postfix ms/msg",
              "tern/Postfix"]


def memory_rows(mem):
    t, p = mem.get("tern"), mem.get("postfix")
    tern_per = (t["after"] - t["before"]) / t["sessions"] if t else None
    pf_rss = p["rss"] / p["sessions"] if p else None
    pf_pss = p["pss"] / p["sessions"] if p else None

    def kib(v, fmt="%.1f KiB"):
        return "n/a" if v is None else fmt % v

    def mib(v):
        return "n/a" if v is None else "%.1f MiB" % (v / 1024)

    return [
        ["idle sessions open (after EHLO)", "{:,}".format(t["sessions"]) if t else "n/a",
         "{:,}".format(p["sessions"]) if p else "n/a", ""],
        ["server RSS before the sessions", mib(t["before"]) if t else "n/a", "", ""],
        ["server RSS with the sessions (Postfix: sum over smtpd)",
         mib(t["after"]) if t else "n/a", mib(p["rss"]) if p else "n/a", ""],
        ["Postfix: sum of smtpd PSS", "", mib(p["pss"]) if p else "n/a", ""],
        ["per session, against Postfix's RSS", kib(tern_per), kib(pf_rss, "%.0f KiB"),
         fmt_ratio(tern_per, pf_rss)],
        ["per session, against Postfix's PSS", kib(tern_per), kib(pf_pss, "%.0f KiB"),
         fmt_ratio(tern_per, pf_pss)],
    ]


MEMORY_HEADER = ["memory", "tern", "Postfix", "tern/Postfix"]


def target_checks(results, mem):
    """The issue's goals, each with PASS, FAIL or n/a and the numbers."""

    def med(target, cfg, kind):
        runs = [r for r in results if r.target == target and r.cfg == cfg]
        return median([r.rate(r.accept_s if kind == "acc" else r.e2e_s) for r in runs])

    checks = []

    def check(what, cfg, kind, factor):
        t, p, s = med("tern", cfg, kind), med("postfix", cfg, kind), med("sink", cfg, "acc")
        if t is None or p is None:
            checks.append((what, "n/a", "tern %s, Postfix %s" % (fmt_rate(t), fmt_rate(p))))
            return
        goal = factor * p
        if s is not None and factor > 1:
            goal = min(goal, 0.8 * s)  # the proviso: 80% of the protocol ceiling
        checks.append((what, "PASS" if t >= goal else "FAIL",
                       "tern %s msg/s, goal %s (Postfix %s, smtp-sink %s)" % (
                           fmt_rate(t), fmt_rate(goal), fmt_rate(p), fmt_rate(s))))

    for reuse in (False, True):
        conn = "reused" if reuse else "new"
        for sessions in (20, 100):
            check("accept, %d sessions, 1 KB, %s connections: ≥ 3× Postfix" % (sessions, conn),
                  (sessions, 1024, reuse), "acc", 3)
        check("accept, 1 session, 1 KB, %s connections: ≥ 1× Postfix" % conn,
              (1, 1024, reuse), "acc", 1)
        check("end-to-end, 20 sessions, 1 KB, %s connections: ≥ 2× Postfix" % conn,
              (20, 1024, reuse), "e2e", 2)
    t = mem.get("tern")
    if t:
        checks.append(("ternd RSS with {:,} idle sessions < 100 MiB".format(t["sessions"]),
                       ("PASS" if t["after"] < 100 * 1024 else "FAIL") +
                       ("" if t["sessions"] >= 10000 else " (fewer than 10,000 sessions)"),
                       "%.1f MiB" % (t["after"] / 1024)))
    else:
        checks.append(("ternd RSS with 10,000 idle sessions < 100 MiB", "n/a", "not measured"))
    return checks


API_PATHS = (("api", "HTTP API: POST /v1/messages, kept-alive connections"),
             ("smtp", "SMTP submission: STARTTLS + AUTH, reused connections"))


def api_medians(runs):
    """{path: (accept msg/s, end-to-end msg/s, ternd CPU s/msg)}, medians."""
    out = {}
    for path, _ in API_PATHS:
        mine = [r for r in runs if r.target == path]
        out[path] = (median([r.rate(r.accept_s) for r in mine]),
                     median([r.rate(r.e2e_s) for r in mine]),
                     median([r.cpu_s / r.n for r in mine if r.cpu_s is not None]))
    return out


def api_rows(runs):
    """One row per path and the ratio API/SMTP (rates: higher is better for
    the API; CPU: lower is)."""
    m = api_medians(runs)
    rows = []
    for path, label in API_PATHS:
        mine = [r for r in runs if r.target == path]
        conc = mine[0].cfg[0] if mine else "n/a"
        rows.append([label, conc, fmt_rate(m[path][0]), fmt_rate(m[path][1]),
                     fmt_ms(m[path][2])])
    rows.append(["API/SMTP", "", fmt_ratio(m["api"][0], m["smtp"][0]),
                 fmt_ratio(m["api"][1], m["smtp"][1]), fmt_ratio(m["api"][2], m["smtp"][2])])
    return rows


API_HEADER = ["path", "connections", "accept msg/s", "end-to-end msg/s", "ternd CPU ms/msg"]


def api_checks(runs):
    """The issue's goal: a message over the API costs no more than over SMTP."""
    if not runs:
        return []
    m = api_medians(runs)
    (a_rate, _, a_cpu), (s_rate, _, s_cpu) = m["api"], m["smtp"]
    checks = []
    if a_rate is None or s_rate is None:
        checks.append(("API accept rate ≥ SMTP submission's", "n/a", "API %s, SMTP %s" % (
            fmt_rate(a_rate), fmt_rate(s_rate))))
    else:
        checks.append(("API accept rate ≥ SMTP submission's",
                       "PASS" if a_rate >= s_rate else "FAIL",
                       "API %s msg/s, SMTP %s msg/s" % (fmt_rate(a_rate), fmt_rate(s_rate))))
    if a_cpu is None or s_cpu is None:
        checks.append(("ternd CPU per message, API ≤ SMTP submission", "n/a", ""))
    else:
        checks.append(("ternd CPU per message, API ≤ SMTP submission",
                       "PASS" if a_cpu <= s_cpu else "FAIL",
                       "API %s ms, SMTP %s ms" % (fmt_ms(a_cpu), fmt_ms(s_cpu))))
    return checks


def api_raw_rows(runs):
    return [[r.rep + 1, r.target, r.cfg[0], r.n,
             "n/a" if r.accept_s is None else "%.3f" % r.accept_s,
             "n/a" if r.e2e_s is None else "%.3f" % r.e2e_s,
             "n/a" if r.cpu_s is None else "%.2f" % r.cpu_s, r.note] for r in runs]


API_RAW_HEADER = ["round", "path", "connections", "messages", "accept s", "end-to-end s",
                  "CPU s", "note"]


def raw_rows(results):
    rows = []
    for r in results:
        sessions, size, reuse = r.cfg
        rows.append([r.rep + 1, r.target, sessions, fmt_size(size),
                     "reused" if reuse else "new", r.n,
                     "n/a" if r.accept_s is None else "%.3f" % r.accept_s,
                     "n/a" if r.e2e_s is None else "%.3f" % r.e2e_s,
                     "n/a" if r.cpu_s is None else "%.2f" % r.cpu_s, r.note])
    return rows


RAW_HEADER = ["rep", "target", "sessions", "size", "connection", "messages",
              "accept s", "end-to-end s", "CPU s", "note"]


def text_summary(ctx):
    """The tables printed at the end of a run."""
    parts = ["Throughput (messages/s, median of %d)" % ctx["reps"],
             md_table(THROUGHPUT_HEADER, throughput_rows(ctx["results"], ctx["configs"])),
             "", "CPU per message (user+sys, whole run including relay)",
             md_table(CPU_HEADER, cpu_rows(ctx["results"], ctx["configs"])),
             "", md_table(MEMORY_HEADER, memory_rows(ctx["mem"])),
             "", "Disk: new file + 4 KiB write + fsync, per second: %s from 1 thread, %s from "
             "20 threads" % (fmt_rate(ctx["fsync"].get(1)), fmt_rate(ctx["fsync"].get(20))),
             "", "HTTP API against SMTP submission (1 KB, median of %d)" % (
                 ctx["settings"].api_rounds),
             md_table(API_HEADER, api_rows(ctx["api"])),
             "", md_table(["goal", "result", "numbers"],
                          target_checks(ctx["results"], ctx["mem"]) + api_checks(ctx["api"]))]
    if ctx["notes"]:
        parts += [""] + ["note: " + n for n in ctx["notes"]]
    return "\n".join(parts)


def _commands(ctx):
    """The exact command lines of the run, as a reader would retype them."""
    svc = ctx["svc"]
    st = ctx["settings"]
    t_sink, p_sink = svc["tern_sink"], svc["postfix_sink"]
    example = smtp_source_argv("ADDR", 0, "SESSIONS", "N", "SIZE", False)
    lines = [
        "# the two receivers (identical; one per server)",
        " ".join(t_sink.argv),
        " ".join(p_sink.argv),
        "# DNS for tern: MX of the bench domain -> the sink's address",
        " ".join(svc["dns"].argv),
        "# the servers",
        "postfix -c %s check && postfix -c %s start" % (svc["postfix"].config_dir,
                                                        svc["postfix"].config_dir),
        "%s -c %s" % (svc["tern"].ternd, svc["tern"].conf),
        "# one run (N = %d; %d for 1 session; -d only for reused connections)" % (
            st.n, st.messages(1)),
        " ".join(example[:-1]).replace("ADDR", "") + " [-d] ADDR:PORT",
        "#   ADDR:PORT = %s:%d (smtp-sink alone), %s:%d (tern), %s:%d (Postfix)" % (
            SINK_IP, t_sink.port, TERN_IP, svc["tern"].port, POSTFIX_IP, svc["postfix"].port),
    ]
    return "\n".join(lines)


METHOD = """\
- **Acceptance**: wall time of one `smtp-source` run of N messages, from its
  start until it exits (it has then had the 250 reply to every message's
  end of data), as messages per second.  Both servers reply 250 only once the
  message is on disk and fsynced (Postfix fsyncs each queue file; tern's
  spool promises the same).
- **End-to-end**: from the same start until the server's `smtp-sink` has
  counted all N messages (`smtp-sink -c` prints its counters as it goes).
  Each server relays to its own, identical, smtp-sink so that a late
  delivery by one can never be counted for the other.  Postfix relays with
  `relayhost = [127.0.0.9]:PORT`; tern finds the sink through the MX record
  that dnsmasq serves for the bench domain and uses `remote_port`.
- **smtp-sink alone**: the same `smtp-source` command straight into
  smtp-sink: what the client and the protocol allow on this machine.
- **CPU per message**: user+system seconds over the run (acceptance and
  relay) divided by N.  For tern, ternd's `/proc/PID/stat` (all threads).
  For Postfix, the master's own and reaped children's time plus the time of
  its live children (smtpd, cleanup, qmgr, smtp, trivial-rewrite, ...).
- **Memory**: ternd's VmRSS before and with the idle sessions open (each
  greeted and past EHLO); per session is the growth divided by the sessions.
  Postfix runs one smtpd process per session: the sum of their RSS (which
  counts shared library pages once per process) and of their PSS (shared
  pages divided among the processes), divided by the sessions.
- **Disk**: a loop creating a new file, writing 4 KiB and fsyncing it, in
  the same directory tree as the spools, for a fixed time, from 1 thread and
  from 20 threads: the rate a file-per-message queue is bound by.
- **HTTP API against SMTP submission** (`bench/api.py`): the same ternd takes
  N messages of 1 KB from one user (`app@api.bench.test`, no quota) for the
  remote recipient, over each path in turn: `POST /v1/messages` with the
  user's API key on C HTTP/1.1 connections kept alive (Python's
  `http.client`), and submission with STARTTLS and AUTH PLAIN on C
  connections reused for every message (Python's `smtplib`: MAIL, RCPT and
  DATA, each waiting for its reply).  Each client is a process of its own,
  connected, through TLS and authenticated before the clock starts;
  acceptance ends at the last 202 or 250, end-to-end when the sink has
  counted all N.  ternd's CPU per message is its CPU time from the start
  until end-to-end, divided by N.  The http listener speaks plain HTTP, so
  only the SMTP path pays for TLS; the rounds alternate which path goes
  first.
- Each configuration runs REPS times; the order tern/Postfix alternates; the
  tables give medians.  Before each run the previous run's deliveries have
  finished (Postfix's queue is empty and neither sink counts anything more).
"""


def write_markdown(path, ctx):
    st = ctx["settings"]
    svc = ctx["svc"]
    out = ["# Performance: tern and Postfix side by side", ""]
    if st.quick:
        out += ["**This is a smoke run (`BENCH_QUICK=1`): too few messages and one "
                "repetition; the numbers only show that the benchmark works.**", ""]
    elif st.reduced:
        out += ["**A reduced run (BENCH_N=%d, BENCH_REPS=%d, BENCH_IDLE=%d): fewer messages, "
                "repetitions or idle sessions than a plain `make bench`.**" % (
                    st.n, st.reps, st.idle), ""]
    facts = ctx["facts"] + [("load average (1 min) before the run", "%.2f" % ctx["load_start"])]
    out += ["Measured by `make bench` (`bench/run.sh`) in one run: %d repetition(s), "
            "medians; N = %d messages per run (%d with 1 session); %d idle sessions "
            "for ternd's memory." % (st.reps, st.n, st.messages(1), st.idle), "",
            "## Machine", "",
            md_table(["", ""], [[k, v] for k, v in facts]), "",
            "## Throughput (messages per second)", "",
            md_table(THROUGHPUT_HEADER, throughput_rows(ctx["results"], st.configs)), "",
            "## CPU per message (milliseconds of user+system time)", "",
            md_table(CPU_HEADER, cpu_rows(ctx["results"], st.configs)), ""]
    if ctx["tern_relay"] is False:
        out += ["tern's CPU covers acceptance only: its relay did not deliver.", ""]
    out += ["## Memory", "", md_table(MEMORY_HEADER, memory_rows(ctx["mem"])), ""]
    p = ctx["mem"].get("postfix")
    if p:
        out += ["Postfix: %d idle sessions held by %d smtpd processes." % (
            p["sessions"], p["processes"]), ""]
    out += ["## Disk", "",
            "New file, 4 KiB write, fsync, in the bench's temporary directory: "
            "%s per second from 1 thread, %s per second from 20 threads." % (
                fmt_rate(ctx["fsync"].get(1)), fmt_rate(ctx["fsync"].get(20))), "",
            "## HTTP API against SMTP submission", "",
            "%d messages of 1 KB per round from one user to the remote recipient, over %d "
            "connections on each path; medians of %d rounds.  A ratio above 1 for a rate, "
            "or below 1 for CPU, favours the API." % (st.api_n, st.api_conc, st.api_rounds), "",
            md_table(API_HEADER, api_rows(ctx["api"])), "",
            "## Goals", "",
            md_table(["goal", "result", "numbers"],
                     target_checks(ctx["results"], ctx["mem"]) + api_checks(ctx["api"])),
            ""]
    if ctx["notes"]:
        out += ["## Notes", ""] + ["- " + n for n in ctx["notes"]] + [""]
    out += ["## Method", "", METHOD,
            "## Commands", "", "```", _commands(ctx), "```", "",
            "tern's configuration (`tern.conf`):", "", "```", svc["tern"].config.rstrip(), "```",
            "", "Postfix's `main.cf` (the instance's own config_directory):", "",
            "```", svc["postfix"].main_cf.rstrip(), "```", "",
            "Postfix's `master.cf`:", "", "```", svc["postfix"].master_cf.rstrip(), "```", "",
            "## Every run", "",
            "Seconds from the start of smtp-source; CPU seconds of the server over the run.",
            "", md_table(RAW_HEADER, raw_rows(ctx["results"])), "",
            "API and SMTP submission rounds: seconds from the start of the clients; CPU "
            "seconds of ternd until end-to-end.", "",
            md_table(API_RAW_HEADER, api_raw_rows(ctx["api"])), ""]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(out))
