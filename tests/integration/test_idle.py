"""test_idle.py - a thousand idle connections neither block the daemon nor
cost it much memory.

DESIGN.md, Runtime model: one event loop owns every connection and nothing
on it blocks, so idle sessions must not stop a fresh client from being
served.  Memory per idle session is small: the daemon stays under 64 MiB of
resident memory with 1000 of them (not checked under AddressSanitizer,
whose shadow memory inflates RSS).
"""
import resource

from helpers import ASAN, SLOW, SMTPConn, check, make_message, rss_kib

IDLE = 1000
BATCH = 50
RSS_LIMIT_KIB = 64 * 1024


def raise_nofile(want):
    """Raise this process's (and so the daemon's) descriptor limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def test_thousand_idle_connections_still_serve_a_fresh_client(tern_factory):
    limit = raise_nofile(2 * IDLE + 512)
    assert limit == resource.RLIM_INFINITY or limit >= IDLE + 256, \
        "RLIMIT_NOFILE %d is too low for %d connections" % (limit, IDLE)
    t = tern_factory(max_connections=2000, max_connections_per_ip=2000,
                     timeout_greeting_wait="120s", timeout_command="120s")
    t.start()
    t.add_domain("tern.test")
    t.add_user("bob@tern.test")

    idle = []
    try:
        for first in range(0, IDLE, BATCH):
            batch = [SMTPConn(t.smtp_port, timeout=30 * SLOW) for _ in range(BATCH)]
            idle.extend(batch)
            for c in batch:
                c.greet()
            for n, c in enumerate(batch):
                c.send("EHLO idle%d.example\r\n" % (first + n))
            for c in batch:
                check(c.reply(), 250, what="EHLO on idle connection")

        with t.smtp(ehlo=True) as fresh:
            fresh.deliver(["bob@tern.test"], make_message("while a thousand wait"))
        t.wait_messages("bob@tern.test", 1)

        if not ASAN:
            rss = rss_kib(t.pid)
            assert rss < RSS_LIMIT_KIB, "VmRSS %d KiB with %d idle sessions" % (rss, IDLE)

        # every idle session is still there and answers
        for c in idle:
            c.send("NOOP\r\n")
        for c in idle:
            check(c.reply(), 250, what="NOOP on idle connection")
    finally:
        for c in idle:
            c.close()
