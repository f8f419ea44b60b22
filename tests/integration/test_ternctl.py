"""test_ternctl.py - the admin command: domains, users, aliases.

Contracts (DESIGN.md, ternctl): `ternctl -c FILE COMMAND`; exit 0 on
success, 1 on failure with the reason on stderr, 2 on bad usage; changes
take effect on the running daemon at once, without a restart.  The password
of `user add` is one line on stdin.
"""
import pytest

from helpers import check, make_message


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
