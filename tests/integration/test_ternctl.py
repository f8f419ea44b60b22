"""test_ternctl.py - the admin command: domains, users, aliases, users'
limits (quotas, rate, source IP) and the statistics of `ternctl stats`.

Contracts (DESIGN.md, ternctl): `ternctl -c FILE COMMAND`; exit 0 on
success, 1 on failure with the reason on stderr, 2 on bad usage; changes
take effect on the running daemon at once, without a restart.  The password
of `user add` is one line on stdin.
"""
import datetime
import smtplib

import pytest

from helpers import DELIVERY_TIMEOUT, SLOW, check, make_message, poll
from tls_helpers import PASSWORD, RCPT, USER, client_context, subtern

assert subtern  # a fixture, used by name below


def tokens(output):
    """The whitespace-separated words of every line of OUTPUT."""
    return [line.split() for line in output.splitlines() if line.strip()]


def listed(output, word):
    return any(word in line for line in tokens(output))


def rcpt(t, address):
    """The reply to RCPT TO:<ADDRESS> in a new session."""
    with t.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        r = c.cmd("RCPT TO:<%s>" % address)
        c.cmd("QUIT")
    return r


def test_domain_add_is_listed(tern):
    tern.add_domain("other.test")
    out = tern.ctl_ok("domain", "list")
    assert listed(out, "tern.test") and listed(out, "other.test"), out


def test_user_add_takes_password_on_stdin_and_is_listed(tern):
    tern.ctl_ok("user", "add", "carol@tern.test", input="carol-secret-pw\n")
    out = tern.ctl_ok("user", "list")
    assert listed(out, "carol@tern.test") and listed(out, "bob@tern.test"), out
    assert "carol-secret-pw" not in out, "user list must not show passwords"


def test_alias_add_is_listed_with_its_targets(tern):
    tern.add_user("carol@tern.test")
    tern.add_alias("team@tern.test", "bob@tern.test", "carol@tern.test")
    out = tern.ctl_ok("alias", "list")
    lines = [l for l in out.splitlines() if "team@tern.test" in l]
    assert lines, out
    assert "bob@tern.test" in lines[0] and "carol@tern.test" in lines[0], out


def test_user_added_while_running_is_accepted_at_once(tern):
    check(rcpt(tern, "carol@tern.test"), 550, "5.1.1")
    tern.add_user("carol@tern.test")
    check(rcpt(tern, "carol@tern.test"), 250, "2.1.5")
    with tern.smtp(ehlo=True) as c:
        c.deliver(["carol@tern.test"], make_message("for carol", to="carol@tern.test"))
    tern.wait_messages("carol@tern.test", 1)


def test_alias_added_while_running_is_accepted_at_once(tern):
    check(rcpt(tern, "postmaster@tern.test"), 550, "5.1.1")
    tern.add_alias("postmaster@tern.test", "bob@tern.test")
    check(rcpt(tern, "postmaster@tern.test"), 250, "2.1.5")


def test_user_del_refuses_rcpt_at_once(tern):
    check(rcpt(tern, "bob@tern.test"), 250, "2.1.5")
    tern.ctl_ok("user", "del", "bob@tern.test")
    check(rcpt(tern, "bob@tern.test"), 550, "5.1.1")
    assert not listed(tern.ctl_ok("user", "list"), "bob@tern.test")


def test_alias_del_refuses_rcpt_at_once(tern):
    tern.add_alias("team@tern.test", "bob@tern.test")
    check(rcpt(tern, "team@tern.test"), 250, "2.1.5")
    tern.ctl_ok("alias", "del", "team@tern.test")
    check(rcpt(tern, "team@tern.test"), 550, "5.1.1")
    assert not listed(tern.ctl_ok("alias", "list"), "team@tern.test")


def test_domain_del_makes_domain_foreign_at_once(tern):
    tern.add_domain("other.test")
    check(rcpt(tern, "anyone@other.test"), 550, "5.1.1")
    tern.ctl_ok("domain", "del", "other.test")
    check(rcpt(tern, "anyone@other.test"), 554, "5.7.1")
    assert not listed(tern.ctl_ok("domain", "list"), "other.test")


def test_accounts_survive_a_restart(tern):
    tern.add_user("carol@tern.test")
    tern.add_alias("team@tern.test", "carol@tern.test")
    assert tern.stop() == 0
    tern.start()
    check(rcpt(tern, "carol@tern.test"), 250, "2.1.5")
    check(rcpt(tern, "team@tern.test"), 250, "2.1.5")


FAILURES = [
    (["domain", "add", "tern.test"], None, "domain exists"),
    (["user", "add", "bob@tern.test"], "pw\n", "user exists"),
    (["user", "add", "zed@not-hosted.test"], "pw\n", "domain not hosted"),
    (["user", "del", "nosuch@tern.test"], None, "no such user"),
    (["alias", "del", "nosuch@tern.test"], None, "no such alias"),
]


@pytest.mark.parametrize("args,stdin,why", FAILURES, ids=[f[2] for f in FAILURES])
def test_failure_exits_1_with_reason(tern, args, stdin, why):
    cp = tern.ctl(*args, input=stdin)
    assert cp.returncode == 1, "%s: exit %d %s" % (why, cp.returncode, cp.stderr)
    assert cp.stderr.strip(), "%s: no reason on stderr" % why


USAGE = [
    [],
    ["frobnicate"],
    ["domain"],
    ["domain", "add"],
    ["user", "add"],
    ["alias", "add", "team@tern.test"],
]


@pytest.mark.parametrize("args", USAGE, ids=[" ".join(a) or "nothing" for a in USAGE])
def test_bad_usage_exits_2(tern_factory, args):
    t = tern_factory()
    cp = t.ctl(*args, input="")
    assert cp.returncode == 2, "ternctl %s: exit %d %s" % (args, cp.returncode, cp.stderr)


# ---- limits: user add --rate, user set, user list ----


def user_line(t, address):
    """The words of ADDRESS's line in `user list`, as a dict of name=value."""
    for words in tokens(t.ctl_ok("user", "list")):
        if words[0] == address:
            return dict(w.split("=", 1) for w in words[1:])
    raise AssertionError("%s not in user list" % address)


def test_user_add_with_limits_lists_them(tern):
    tern.ctl_ok("user", "add", "carol@tern.test", "--quota-day", "10", "--quota-month=100",
                "--rate", "5", "--source-ip", "127.0.0.1", input="pw\n")
    assert user_line(tern, "carol@tern.test") == {
        "quota_day": "10", "quota_month": "100", "rate_minute": "5", "source_ip": "127.0.0.1"}
    assert user_line(tern, "bob@tern.test") == {
        "quota_day": "unlimited", "quota_month": "unlimited", "rate_minute": "unlimited",
        "source_ip": "none"}


def test_user_set_changes_only_the_limits_named(tern):
    tern.ctl_ok("user", "add", "carol@tern.test", "--quota-day", "10", "--quota-month", "100",
                "--source-ip", "127.0.0.1", input="pw\n")
    tern.ctl_ok("user", "set", "Carol@tern.test", "--rate", "7")
    assert user_line(tern, "carol@tern.test") == {
        "quota_day": "10", "quota_month": "100", "rate_minute": "7", "source_ip": "127.0.0.1"}
    tern.ctl_ok("user", "set", "carol@tern.test", "--quota-day", "0", "--source-ip", "none",
                "--quota-month=250")
    assert user_line(tern, "carol@tern.test") == {
        "quota_day": "unlimited", "quota_month": "250", "rate_minute": "7", "source_ip": "none"}
    # Another user's limits are untouched.
    assert user_line(tern, "bob@tern.test")["rate_minute"] == "unlimited"


def test_user_set_keeps_the_password(subtern):
    subtern.ctl_ok("user", "set", USER, "--quota-day", "1000")
    s = smtplib.SMTP("127.0.0.1", subtern.submission_port, timeout=10 * SLOW)
    try:
        s.starttls(context=client_context())
        s.login(USER, PASSWORD)  # raises on 535
    finally:
        s.quit()


def test_user_set_rate_applies_to_the_running_daemon_at_once(subtern):
    """A rate of one message a minute refuses bob's second message; back to
    unlimited, the next one is accepted, without a restart."""
    def try_send():
        s = smtplib.SMTP("127.0.0.1", subtern.submission_port, timeout=10 * SLOW)
        try:
            s.starttls(context=client_context())
            s.login(USER, PASSWORD)
            code, text = s.mail(USER)
            if code == 250:
                code, text = s.rcpt(RCPT)
            if code == 250:
                code, text = s.data(make_message("rate", sender=USER, to=RCPT))
            return code, text
        finally:
            s.quit()

    subtern.ctl_ok("user", "set", USER, "--rate", "1")
    assert try_send()[0] == 250
    code, text = try_send()
    assert code // 100 == 4 and text.startswith(b"4.7."), (code, text)
    subtern.ctl_ok("user", "set", USER, "--rate", "0")
    assert try_send()[0] == 250


LIMIT_FAILURES = [
    (["user", "set", "nosuch@tern.test", "--rate", "3"], "no such user"),
    (["user", "set", "bob@tern.test", "--source-ip", "not-an-ip"], "bad source IP"),
    (["user", "set", "bob@other.test", "--rate", "3"], "user of a domain not hosted"),
]


@pytest.mark.parametrize("args,why", LIMIT_FAILURES, ids=[f[1] for f in LIMIT_FAILURES])
def test_user_set_failure_exits_1_and_changes_nothing(tern, args, why):
    before = tern.ctl_ok("user", "list")
    cp = tern.ctl(*args)
    assert cp.returncode == 1, "%s: exit %d %s" % (why, cp.returncode, cp.stderr)
    assert cp.stderr.strip(), "%s: no reason on stderr" % why
    assert tern.ctl_ok("user", "list") == before


LIMIT_USAGE = [
    ["user", "set"],
    ["user", "set", "bob@tern.test"],
    ["user", "set", "bob@tern.test", "--rate"],
    ["user", "set", "bob@tern.test", "--rate", "many"],
    ["user", "set", "bob@tern.test", "--rate", "-1"],
    ["user", "set", "bob@tern.test", "--speed", "3"],
    ["user", "set", "bob@tern.test", "carol@tern.test", "--rate", "3"],
    ["user", "add", "carol@tern.test", "--rate", "lots"],
    ["stats", "--days", "0"],
    ["stats", "--days", "ten"],
    ["stats", "--days", "100000"],
    ["stats", "--user"],
    ["stats", "--user", "nobody"],
    ["stats", "--weekly"],
]


@pytest.mark.parametrize("args", LIMIT_USAGE, ids=[" ".join(a) for a in LIMIT_USAGE])
def test_limits_and_stats_bad_usage_exits_2(tern_factory, args):
    t = tern_factory()
    cp = t.ctl(*args, input="pw\n")
    assert cp.returncode == 2, "ternctl %s: exit %d %s" % (args, cp.returncode, cp.stderr)
    assert cp.stderr.strip()


# ---- stats ----

STATS_COLUMNS = ["accepted", "delivered", "deferred", "bounced", "rejected"]


def stats(t, *args):
    """`ternctl stats ARGS` as (rows, total): rows a list of (label, counts)
    in the order printed, counts a dict per column."""
    out = t.ctl_ok("stats", *args)
    lines = [l for l in out.splitlines() if l.strip()]
    head = lines[0].split()
    assert head[-5:] == STATS_COLUMNS, out
    rows = []
    for line in lines[1:]:
        words = line.split()
        label, counts = " ".join(words[:-5]), [int(w) for w in words[-5:]]
        rows.append((label, dict(zip(STATS_COLUMNS, counts))))
    assert rows and rows[-1][0] == "total", out
    return rows[:-1], rows[-1][1]


def utc_days(n):
    """The labels of the last N UTC days, today last."""
    today = datetime.datetime.now(datetime.timezone.utc).date()
    return [str(today - datetime.timedelta(days=i)) for i in range(n - 1, -1, -1)]


def test_stats_on_an_empty_store_is_zeros_with_a_total(tern_factory):
    t = tern_factory()  # not started: ternctl reads the store itself
    before = utc_days(7)
    rows, total = stats(t)
    assert [label for label, _ in rows] in (before, utc_days(7)), rows  # midnight may pass
    assert all(v == 0 for _, c in rows for v in c.values()), rows
    assert total == dict.fromkeys(STATS_COLUMNS, 0)
    rows, total = stats(t, "--days", "3")
    assert len(rows) == 3 and total == dict.fromkeys(STATS_COLUMNS, 0)
    rows, total = stats(t, "--hourly")
    assert len(rows) == 24 and total == dict.fromkeys(STATS_COLUMNS, 0)
    hours = [datetime.datetime.strptime(label, "%Y-%m-%d %H:%M") for label, _ in rows]
    assert all(b - a == datetime.timedelta(hours=1) for a, b in zip(hours, hours[1:])), rows
    rows, _ = stats(t, "--hourly", "--days", "2")
    assert len(rows) == 48


def test_stats_count_the_mail_the_daemon_received(tern):
    with tern.smtp(ehlo=True) as c:
        c.deliver(["bob@tern.test"], make_message("stats one"))
        c.deliver(["bob@tern.test"], make_message("stats two"))
        c.expect("MAIL FROM:<alice@example.org>", 250)
        check(c.cmd("RCPT TO:<nosuch@tern.test>"), 550, "5.1.1")
        c.cmd("QUIT")
    tern.wait_messages("bob@tern.test", 2)

    def counted():
        rows, total = stats(tern)
        return (rows, total) if total["delivered"] >= 2 and total["rejected"] >= 1 else None

    rows, total = poll(counted, DELIVERY_TIMEOUT, 0.2, what="stats showing the deliveries")
    # Each event is counted once, in the day it happened.
    assert total == {"accepted": 2, "delivered": 2, "deferred": 0, "bounced": 0,
                     "rejected": 1}, total
    for column in STATS_COLUMNS:
        assert sum(c[column] for _, c in rows) == total[column]
    _, hourly = stats(tern, "--hourly")
    assert hourly == total
    # Inbound mail is no user's sending: bob's own counters are zero.
    _, bobs = stats(tern, "--user", "bob@tern.test")
    assert bobs == dict.fromkeys(STATS_COLUMNS, 0)
