"""test_daemon.py - ternd as a process: configuration check, signals,
privilege drop, reload, log.

Contracts (DESIGN.md, ternd and Configuration file; docs/configuration.md):
`ternd -t -c FILE` exits 0, or 1 printing "FILE:LINE: reason"; SIGTERM and
SIGINT stop it with status 0; SIGHUP reloads the file, and a file with an
error leaves the running configuration in force; started as root it runs as
the configured user (nobody here) and owns data_dir with mode 0700.
"""
import glob
import os
import pwd
import signal
import socket
import subprocess
import time

import pytest

from helpers import (DAEMON_PW, IS_ROOT, SLOW, TERND, check,
                     file_mode, make_message, poll, proc_status, sanitizer_env)


def run_check(conf):
    return subprocess.run([TERND, "-t", "-c", conf], capture_output=True, text=True,
                          timeout=30 * SLOW, env=sanitizer_env())


def port_is_closed(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def rcpt_replies(t, count):
    """One new session: MAIL, then COUNT RCPTs to bob+N; their replies."""
    with t.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        replies = [c.cmd("RCPT TO:<bob+%d@tern.test>" % i) for i in range(count)]
        c.cmd("QUIT")
    return replies


def test_config_check_accepts_good_file(tern_factory):
    t = tern_factory()
    cp = run_check(t.conf)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert port_is_closed(t.smtp_port), "ternd -t must not start serving"


BAD_LINES = [
    ("no_such_directive 1", "unknown directive"),
    ("max_recipients lots", "not a number"),
    ("max_message_size 10Q", "bad size unit"),
    ("timeout_command forever", "bad duration"),
    ("listen smtp 127.0.0.1:99999", "port out of range"),
    ("listen carrier-pigeon 127.0.0.1:2525", "unknown listener kind"),
    ("relay_from 10.0.0.1/8", "bits beyond the prefix"),
    ("max_connections", "missing value"),
    ("hostname mx.tern.test", "directive given twice"),
]


@pytest.mark.parametrize("bad,why", BAD_LINES, ids=[w for _, w in BAD_LINES])
def test_config_check_names_file_and_line_of_error(tern_factory, bad, why):
    t = tern_factory()
    lines = t.config_text().splitlines() + ["", "# the next line is wrong", bad]
    with open(t.conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    lineno = len(lines)
    cp = run_check(t.conf)
    out = cp.stdout + cp.stderr
    assert cp.returncode == 1, "%s: exit %d, output: %s" % (why, cp.returncode, out)
    assert "%s:%d:" % (t.conf, lineno) in out, \
        "%s: expected '%s:%d: reason', got: %s" % (why, t.conf, lineno, out)


def test_config_check_refuses_missing_file(tern_factory):
    t = tern_factory()
    cp = run_check(t.conf + ".missing")
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert (cp.stdout + cp.stderr).strip(), "a refused file must come with a reason"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_daemon_cleanly(tern, sig):
    port = tern.smtp_port
    assert tern.stop(sig) == 0
    assert port_is_closed(port)


def test_sigterm_with_open_session_exits_cleanly(tern):
    c = tern.smtp(ehlo=True)
    c.expect("MAIL FROM:<alice@example.org>", 250)
    c.expect("RCPT TO:<bob@tern.test>", 250)
    assert tern.stop(signal.SIGTERM) == 0
    assert c.wait_closed(5), "the client's connection must be closed on exit"
    c.close()


@pytest.mark.skipif(not IS_ROOT, reason="privilege drop needs a start as root")
def test_root_start_drops_privileges_to_nobody(tern):
    nobody = pwd.getpwnam("nobody")
    tasks = glob.glob("/proc/%d/task/*/status" % tern.pid)
    assert tasks
    for path in tasks:
        st = proc_status(int(path.split("/")[4]))
        assert st["Uid"].split() == [str(nobody.pw_uid)] * 4, "%s Uid: %s" % (path, st["Uid"])
        assert st["Gid"].split() == [str(nobody.pw_gid)] * 4, "%s Gid: %s" % (path, st["Gid"])
        assert "0" not in st["Groups"].split(), "root's groups kept: %s" % st["Groups"]


@pytest.mark.skipif(not IS_ROOT, reason="privilege drop needs a start as root")
def test_default_user_is_nobody_without_tern_user(tern_factory):
    try:
        pwd.getpwnam("tern")
        pytest.skip("a user 'tern' exists here")
    except KeyError:
        pass
    t = tern_factory(user=None)
    t.start()
    uid = proc_status(t.pid)["Uid"].split()
    assert uid == [str(pwd.getpwnam("nobody").pw_uid)] * 4


def test_data_dir_is_created_private_to_daemon_user(tern):
    st = os.stat(tern.data_dir)
    assert st.st_uid == DAEMON_PW.pw_uid
    assert file_mode(tern.data_dir) == 0o700, oct(file_mode(tern.data_dir))


@pytest.mark.tern_config(max_recipients=5)
def test_sighup_applies_lower_max_recipients_to_new_sessions(tern):
    pid = tern.pid
    for r in rcpt_replies(tern, 3):
        check(r, 250, "2.1.5")

    tern.write_config(max_recipients=2)
    tern.send_signal(signal.SIGHUP)

    def reloaded():
        replies = rcpt_replies(tern, 3)
        return replies if replies[2].code == 452 else None

    replies = poll(reloaded, 10 * SLOW, 0.1, what="max_recipients 2 after SIGHUP")
    check(replies[0], 250, "2.1.5")
    check(replies[1], 250, "2.1.5")
    check(replies[2], 452, "4.5.3")
    assert tern.running() and tern.pid == pid, "a reload must not restart the process"


@pytest.mark.tern_config(max_recipients=5)
def test_sighup_with_bad_config_keeps_running_configuration(tern):
    good = tern.config_text()
    with open(tern.conf, "w") as f:
        f.write(good.replace("max_recipients 5", "max_recipients 2") + "no_such_directive 1\n")
    tern.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for r in rcpt_replies(tern, 3):
            check(r, 250, "2.1.5", what="old max_recipients 5 must stay in force")
    assert tern.running()

    # A good file is still taken afterwards, so the signal was handled.
    tern.write_config(max_recipients=2)
    tern.send_signal(signal.SIGHUP)
    poll(lambda: rcpt_replies(tern, 3)[2].code == 452, 10 * SLOW, 0.1,
         what="max_recipients 2 after a good reload")


def test_accepted_message_is_logged_with_its_queue_id(tern):
    with tern.smtp(ehlo=True) as c:
        qid = c.deliver(["bob@tern.test"], make_message("logged"))
    poll(lambda: qid in tern.log(), 5 * SLOW, what="queue id %s in the log" % qid)


def test_log_never_carries_raw_control_bytes_from_clients(tern):
    with tern.smtp() as c:
        c.cmd("EHLO evil\x1b[2J.example")
        c.cmd("MAIL FROM:<a\x1b[31m@example.org>")
        c.cmd("RCPT TO:<x\x1b]0;title\x07@tern.test>")
        c.cmd("QUIT")
    time.sleep(0.2)
    log = tern.log()
    assert "\x1b" not in log and "\x07" not in log, "client bytes copied raw into the log"
