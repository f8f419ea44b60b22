"""conftest.py - start the real ternd, drive ternctl, and a private Dovecot.

TERN_BUILD names the build directory holding ternd and ternctl (build/ by
default; build-asan/ for the sanitizer build).  Each test gets its own
daemon on a free loopback port with a fresh data_dir; its teardown stops the
daemon with SIGTERM, expects exit status 0, and fails the test when the
daemon's log holds a sanitizer report.  The logs of a failed test are added
to its report.

When the tests run as root, ternd drops to the user "nobody", so every
directory on the way to data_dir is made searchable by others.
"""
import imaplib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from helpers import (DAEMON_PW, DAEMON_USER, DELIVERY_TIMEOUT, HOSTNAME, IS_ROOT,
                     SLOW, START_TIMEOUT, TERNCTL, TERND, SMTPConn, free_port,
                     has_sanitizer_report, poll, sanitizer_env, tail)

# The configuration every test starts from; a test changes it with
# @pytest.mark.tern_config(name=value, ...) or tern_factory(name=value);
# None removes a directive, a list repeats it.
BASE_SETTINGS = {
    "hostname": HOSTNAME,
    "user": "nobody",
    "max_message_size": "100K",
    "max_errors": "50",
    "timeout_greeting_wait": "30s",
    "timeout_command": "30s",
    "timeout_data": "30s",
    "workers": "2",
    "log_level": "info",
    # Tests open connections from one address in tight loops; the rate
    # limit itself is tested with a low value of its own.
    "max_connection_rate": "1000000",
}


class Tern:
    """One ternd instance: its config file, data_dir, process and log."""

    def __init__(self, root, name="tern", data_dir=None, submission=False, **settings):
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "tern.conf")
        self.data_dir = data_dir or os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "ternd.log")
        self.smtp_port = free_port()
        self.submission_port = free_port() if submission else None
        self.settings = dict(BASE_SETTINGS)
        self.settings.update(settings)
        self.proc = None
        self.exit_expected = False
        self.history = []  # (argv, rc, stdout, stderr) of every ternctl run
        self.problems = []
        self.write_config()

    # configuration

    def config_text(self):
        lines = ["# written by the integration tests",
                 "data_dir %s" % self.data_dir,
                 "listen smtp 127.0.0.1:%d" % self.smtp_port]
        if self.submission_port:
            lines.append("listen submission 127.0.0.1:%d" % self.submission_port)
        for name, value in self.settings.items():
            if value is None:
                continue
            for v in (value if isinstance(value, (list, tuple)) else [value]):
                lines.append("%s %s" % (name, v))
        return "\n".join(lines) + "\n"

    def write_config(self, **changes):
        self.settings.update(changes)
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    # ternctl

    def ctl(self, *args, input=None):
        """Run ternctl with this instance's config; the CompletedProcess."""
        argv = [TERNCTL, "-c", self.conf] + list(args)
        assert os.access(TERNCTL, os.X_OK), "ternctl is not built: %s" % TERNCTL
        cp = subprocess.run(argv, input=input, capture_output=True, text=True,
                            timeout=30 * SLOW, env=sanitizer_env())
        self.history.append((args, cp.returncode, cp.stdout, cp.stderr))
        found = has_sanitizer_report(cp.stderr)
        if found:
            self.problems.append("ternctl %s: sanitizer report %s" % (" ".join(args), found))
        assert not found, "sanitizer report from ternctl %s:\n%s" % (args, cp.stderr)
        return cp

    def ctl_ok(self, *args, input=None):
        cp = self.ctl(*args, input=input)
        assert cp.returncode == 0, "ternctl %s exited %d: %s%s" % (
            " ".join(args), cp.returncode, cp.stderr, cp.stdout)
        return cp.stdout

    def add_domain(self, domain):
        return self.ctl_ok("domain", "add", domain)

    def add_user(self, address, password="secret"):
        return self.ctl_ok("user", "add", address, input=password + "\n")

    def add_alias(self, address, *targets):
        return self.ctl_ok("alias", "add", address, ",".join(targets))

    # process

    def start(self, wait=True):
        assert os.access(TERND, os.X_OK), "ternd is not built: %s" % TERND
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.logfile, "a") as log:
            log.write("=== test harness: starting %s -c %s\n" % (TERND, self.conf))
            log.flush()
            self.proc = subprocess.Popen([TERND, "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         env=sanitizer_env(), start_new_session=True)
        self.exit_expected = False
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        """Wait until the SMTP listener greets; the probe session is closed
        with QUIT so that it holds no connection slot afterwards."""
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("ternd exited with %d during start-up; log:\n%s"
                                     % (rc, tail(self.log())))
            try:
                c = SMTPConn(self.smtp_port, timeout=5 * SLOW)
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("ternd does not listen on %d after %ds; log:\n%s"
                                         % (self.smtp_port, timeout, tail(self.log())))
                time.sleep(0.05)
                continue
            try:
                c.greet()
                c.cmd("QUIT")
                c.wait_closed(5 * SLOW)
            finally:
                c.close()
            return

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=20 * SLOW):
        """Stop with SIG and return the exit status (a negative number when a
        signal killed it).  Kills it and fails when it does not exit."""
        self.exit_expected = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("ternd did not exit within %ds of signal %d" % (timeout, sig))
        return self.proc.returncode

    def kill(self):
        """SIGKILL: no chance to flush or clean up."""
        self.exit_expected = True
        self.proc.kill()
        self.proc.wait()

    def restart(self):
        return self.start()

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def finish(self):
        """Teardown: stop with SIGTERM, expect 0, look for sanitizer reports.
        Returns the problems found (strings)."""
        problems = list(self.problems)
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    rc = self.stop()
                    if rc != 0:
                        problems.append("%s: ternd exited with status %d on SIGTERM" % (self.name, rc))
                except AssertionError as e:
                    problems.append("%s: %s" % (self.name, e))
            elif not self.exit_expected:
                problems.append("%s: ternd exited by itself with status %d"
                                % (self.name, self.proc.returncode))
        found = has_sanitizer_report(self.log())
        if found:
            problems.append("%s: sanitizer report in ternd's log: %s" % (self.name, ", ".join(found)))
        return problems

    def report(self):
        """Everything useful for reading a failure: log and ternctl runs."""
        out = ["--- ternd log (%s) ---" % self.logfile, tail(self.log())]
        for args, rc, so, se in self.history[-30:]:
            out.append("--- ternctl %s -> %d\n%s%s" % (" ".join(args), rc, so, se))
        return "\n".join(out)

    # mailboxes

    def maildir(self, address):
        local, domain = address.rsplit("@", 1)
        return os.path.join(self.data_dir, "mailboxes", domain, local, "Maildir")

    def messages(self, address, sub="new"):
        """Paths of the messages in ADDRESS's Maildir/new, oldest name first."""
        d = os.path.join(self.maildir(address), sub)
        try:
            names = [n for n in os.listdir(d) if not n.startswith(".")]
        except FileNotFoundError:
            return []
        return sorted(os.path.join(d, n) for n in names)

    def wait_messages(self, address, count=1, timeout=DELIVERY_TIMEOUT):
        """Poll until ADDRESS has at least COUNT messages; their paths."""
        def enough():
            found = self.messages(address)
            return found if len(found) >= count else None

        return poll(enough, timeout, what="%d message(s) in %s" % (count, self.maildir(address)))

    def read_messages(self, address):
        out = []
        for p in self.messages(address):
            with open(p, "rb") as f:
                out.append(f.read())
        return out

    # clients

    def smtp(self, greet=True, ehlo=False, port=None):
        c = SMTPConn(port or self.smtp_port, timeout=10 * SLOW)
        if greet:
            c.greet()
        if ehlo:
            c.ehlo()
        return c


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the daemons' logs to the report of a failed test."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call"):
        for t in getattr(item, "tern_instances", []):
            rep.sections.append(("tern %s" % t.name, t.report()))
        dv = getattr(item, "dovecot_instance", None)
        if dv is not None:
            rep.sections.append(("dovecot log", tail(dv.log())))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    kept = getattr(config, "tern_kept_workroot", None)
    if kept:
        terminalreporter.write_line("integration test files kept in %s" % kept)


@pytest.fixture(scope="session")
def workroot(request):
    root = tempfile.mkdtemp(prefix="tern-it-", dir="/tmp")
    os.chmod(root, 0o755)  # the daemon, once it is nobody, must reach data_dir
    yield root
    if request.session.testsfailed:
        request.config.tern_kept_workroot = root
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tern_factory(request, workroot):
    """make(name=..., data_dir=..., submission=..., **settings) -> Tern (not started)."""
    # Short paths: DATA_DIR/control.sock must fit in a socket address (107
    # bytes); the test's name goes into a file instead.
    base = tempfile.mkdtemp(prefix="t", dir=workroot)
    os.chmod(base, 0o755)
    with open(os.path.join(base, "TEST"), "w") as f:
        f.write(request.node.nodeid + "\n")
    request.node.tern_instances = instances = []

    def make(name=None, **kw):
        t = Tern(base, name or "tern%d" % len(instances), **kw)
        instances.append(t)
        return t

    yield make
    problems = []
    for t in instances:
        problems.extend(t.finish())
    if problems:
        pytest.fail("teardown: %s\n%s" % ("; ".join(problems),
                                          "\n".join(t.report() for t in instances)),
                    pytrace=False)


@pytest.fixture
def tern(request, tern_factory):
    """A running ternd hosting tern.test with the user bob@tern.test
    (password "secret"); settings from @pytest.mark.tern_config."""
    marker = request.node.get_closest_marker("tern_config")
    settings = dict(marker.kwargs) if marker else {}
    t = tern_factory(**settings)
    t.start()
    t.add_domain("tern.test")
    t.add_user("bob@tern.test")
    return t


# Dovecot


class Dovecot:
    """A private Dovecot IMAP server reading the Maildirs under DATA_DIR with
    mail_location = maildir:DATA_DIR/mailboxes/%d/%n/Maildir as "nobody"."""

    def __init__(self, root):
        self.dir = os.path.join(root, "dovecot")
        for sub in ("", "run", "state"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.data_dir = os.path.join(root, "dovecot-data")
        self.port = free_port()
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.users = os.path.join(self.dir, "users")
        self.logfile = os.path.join(self.dir, "dovecot.log")
        self.last_lookup = 0.0
        open(self.users, "w").close()
        uid, gid = DAEMON_PW.pw_uid, DAEMON_PW.pw_gid
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(dir=self.dir, data=self.data_dir, port=self.port,
                                        uid=uid, gid=gid, users=self.users,
                                        instance="tern-test-%d" % self.port))
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr"), "w"),
                                     start_new_session=True)
        poll(self._greets, 15, 0.05, what="Dovecot's IMAP greeting on port %d" % self.port)

    def _greets(self):
        if self.proc.poll() is not None:
            raise AssertionError("dovecot exited with %d:\n%s" % (self.proc.returncode, self.log()))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                return s.recv(100).startswith(b"* OK")
        except OSError:
            return False

    def add_user(self, address, password):
        """Dovecot re-reads a changed passwd-file, but checks at most once a
        second: wait until a second has passed since the last lookup."""
        wait = self.last_lookup + 1.1 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with open(self.users, "a") as f:
            f.write("%s:{PLAIN}%s\n" % (address, password))

    def imap(self, address, password):
        """An imaplib connection logged in as ADDRESS."""
        m = imaplib.IMAP4("127.0.0.1", self.port)
        try:
            self.last_lookup = time.monotonic()
            typ, _ = m.login(address, password)
            assert typ == "OK"
        except BaseException:
            m.shutdown()
            raise
        return m

    def log(self):
        out = []
        for name in ("dovecot.log", "stderr"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out.append(f.read())
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = {instance}
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{data}/mailboxes/%d/%n/Maildir
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={data}/mailboxes/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


@pytest.fixture(scope="session")
def dovecot_server(workroot):
    if not IS_ROOT:
        pytest.skip("the private Dovecot needs root (mail_uid %s)" % DAEMON_USER)
    if not shutil.which("dovecot"):
        pytest.skip("dovecot is not installed")
    dv = Dovecot(workroot)
    yield dv
    dv.stop()


@pytest.fixture
def dovecot(request, dovecot_server):
    request.node.dovecot_instance = dovecot_server
    return dovecot_server
