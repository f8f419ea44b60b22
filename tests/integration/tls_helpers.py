"""tls_helpers.py - what the submission and TLS tests share.

A daemon with the smtp, submission and smtps listeners (the `subtern`
fixture), TLS client contexts that do not verify the self-signed
certificate, STARTTLS (RFC 3207) and implicit TLS (RFC 8314) on the raw
SMTPConn client, AUTH PLAIN and LOGIN (RFC 4954) by hand, certificates
made with openssl(1) and read back from a handshake, and a check that the
legacy (TLS 1.0/1.1) client context can really speak those versions, so
that a refused handshake proves something about the server.
"""
import base64
import os
import socket
import ssl
import subprocess
import warnings

import pytest

from helpers import SLOW, SMTPConn, check, free_port, poll

USER = "bob@tern.test"
PASSWORD = "secret"
RCPT = "carol@tern.test"  # a second local user: the recipient of the tests' mail
OTHER = "alice@tern.test"  # a third user, whose addresses bob must not use

# Settings for every daemon of these tests: no failure delay except where
# the delay itself is tested.
TLS_SETTINGS = {"auth_failure_delay": "0"}


def make_subtern(tern_factory, **settings):
    """A Tern (not started) listening on smtp, submission and smtps;
    SETTINGS override TLS_SETTINGS.  conftest's Tern knows smtp and
    submission; smtps is one more `listen` line, its port t.smtps_port."""
    smtps_port = free_port()
    merged = dict(TLS_SETTINGS)
    merged.update(settings)
    extra = merged.pop("listen", [])
    if isinstance(extra, str):
        extra = [extra]
    t = tern_factory(submission=True, listen=["smtps 127.0.0.1:%d" % smtps_port] + list(extra),
                     **merged)
    t.smtps_port = smtps_port
    return t


def populate(t):
    """The domain and users every submission test relies on."""
    t.add_domain("tern.test")
    for address in (USER, RCPT, OTHER):
        t.add_user(address, PASSWORD)


@pytest.fixture
def subtern(request, tern_factory):
    """A running ternd with smtp, submission and smtps listeners, hosting
    tern.test with bob, carol and alice (password "secret");
    auth_failure_delay 0 unless @pytest.mark.tern_config says otherwise."""
    marker = request.node.get_closest_marker("tern_config")
    t = make_subtern(tern_factory, **(dict(marker.kwargs) if marker else {}))
    t.start()
    populate(t)
    return t


# TLS client side


def client_context(minimum=None, maximum=None, legacy=False):
    """A client context that accepts any certificate (the daemon's is
    self-signed).  LEGACY lowers OpenSSL's security level so that the
    client can offer TLS 1.0 and 1.1 at all."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if legacy:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    return ctx


def legacy_context(version):
    """A client context that speaks only VERSION (TLSv1 or TLSv1_1)."""
    return client_context(minimum=version, maximum=version, legacy=True)


def starttls(c, ctx=None):
    """STARTTLS on the SMTPConn C (after EHLO): 220, then the handshake on
    the same socket.  Nothing may have arrived after the 220."""
    c.expect("STARTTLS", 220, "2.0.0")
    assert not c.buf, "bytes after the 220 to STARTTLS, before the handshake: %r" % c.buf
    c.sock = (ctx or client_context()).wrap_socket(c.sock)
    return c.sock


def submission_conn(t, ehlo=True, auth=False, user=USER, password=PASSWORD, ctx=None,
                    source=None):
    """An SMTPConn to the submission port, greeted, EHLOed, STARTTLSed and
    EHLOed again; logged in when AUTH."""
    c = SMTPConn(t.submission_port, timeout=10 * SLOW, source=source)
    try:
        c.greet()
        c.ehlo()
        starttls(c, ctx)
        if ehlo:
            c.ehlo()
        if auth:
            check(auth_plain(c, user, password), 235, "2.7.0", what="AUTH PLAIN")
    except BaseException:
        c.close()
        raise
    return c


def smtps_conn(t, ctx=None, greet=True, source=None):
    """An SMTPConn to the smtps port with TLS from the first byte."""
    c = SMTPConn(t.smtps_port, timeout=10 * SLOW, source=source)
    try:
        c.sock = (ctx or client_context()).wrap_socket(c.sock)
        if greet:
            c.greet()
    except BaseException:
        c.close()
        raise
    return c


def plain_token(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


def auth_plain(c, user, password, timeout=None):
    """AUTH PLAIN with an initial response (RFC 4954 4); the Reply."""
    return c.cmd("AUTH PLAIN " + plain_token(user, password), timeout)


def auth_login(c, user, password):
    """AUTH LOGIN in three steps; the final Reply."""
    check(c.cmd("AUTH LOGIN"), 334, what="AUTH LOGIN")
    check(c.cmd(base64.b64encode(user.encode()).decode()), 334, what="LOGIN user name")
    return c.cmd(base64.b64encode(password.encode()).decode())


def ehlo_keywords(reply):
    """The EHLO keywords (upper case, with their parameters) of a 250 reply."""
    return [text.upper() for text in reply.texts[1:]]


def offers_auth(reply):
    return any(k.split()[0] == "AUTH" for k in ehlo_keywords(reply))


# certificates


def make_cert(directory, cn, name):
    """A self-signed RSA pair for CN in DIRECTORY/NAME-{cert,key}.pem; the
    paths.  Readable by everyone: the daemon reads them again on SIGHUP
    after it has dropped to nobody."""
    cert = os.path.join(directory, name + "-cert.pem")
    key = os.path.join(directory, name + "-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=" + cn, "-days", "2", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)
    return cert, key


def cert_subject(der):
    """The subject of a DER certificate as openssl prints it
    ("subject=CN = name")."""
    cp = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
                        input=der, capture_output=True, check=True, timeout=30)
    return cp.stdout.decode().strip()


def peer_cn(sslsock):
    subject = cert_subject(sslsock.getpeercert(binary_form=True))
    for part in subject.split("=", 1)[1].split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == "CN":
            return value.strip()
    raise AssertionError("no CN in %r" % subject)


def file_subject(cert_path):
    cp = subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-subject"],
                        capture_output=True, check=True, timeout=30)
    return cp.stdout.decode().strip()


# the legacy client must be able to speak TLS 1.0 and 1.1, or a refused
# handshake would prove nothing


def legacy_handshake_works(directory, version):
    """Does legacy_context(VERSION) complete a handshake with an
    `openssl s_server` that speaks only VERSION?  The negotiated version
    string, or an explanation of why not."""
    flag = {ssl.TLSVersion.TLSv1: "-tls1", ssl.TLSVersion.TLSv1_1: "-tls1_1"}[version]
    cert, key = make_cert(directory, "legacy-probe", "legacy")
    port = free_port()
    # s_server stops when its stdin ends; keep the pipe open until done.
    srv = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                            "-cert", cert, "-key", key, flag, "-cipher", "DEFAULT:@SECLEVEL=0",
                            "-naccept", "1"],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def connect():
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                if srv.poll() is not None:
                    raise AssertionError("openssl s_server %s exited" % flag)
                return None

        sock = poll(connect, 10, 0.05, what="openssl s_server on %d" % port)
        try:
            with legacy_context(version).wrap_socket(sock) as t:
                return t.version()
        except (ssl.SSLError, OSError) as e:
            return "handshake failed: %s" % e
    finally:
        srv.stdin.close()
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def wait_log(t, text, timeout=10 * SLOW, start=0):
    """Wait until ternd's log holds TEXT after offset START."""
    return poll(lambda: text in t.log()[start:], timeout, 0.05, what="%r in ternd's log" % text)
