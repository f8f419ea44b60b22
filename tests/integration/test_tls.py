"""test_tls.py - TLS on the SMTP listeners and the limits on AUTH.

STARTTLS (RFC 3207) on smtp and submission, implicit TLS (RFC 8314) on
smtps: plaintext pipelined after STARTTLS is thrown away and the session
starts over (RFC 3207 4.2); TLS 1.0 and 1.1 are refused, 1.2 and 1.3
work; the generated self-signed certificate and a configured one, swapped
on SIGHUP for new connections while running ones go on.  AUTH (RFC 4954):
failures are slowed, too many on a connection end it with 421 4.7.0, and
too many from one address lock that address out, even with the right
password.
"""
import os
import signal
import smtplib
import ssl
import tempfile
import time

import pytest

from helpers import HOSTNAME, SLOW, SMTPConn, check, make_message, poll, unique_id
from tls_helpers import (PASSWORD, RCPT, USER, auth_login, auth_plain, client_context,
                         file_subject, legacy_context, legacy_handshake_works, make_cert,
                         make_subtern, offers_auth, peer_cn, plain_token, populate, smtps_conn,
                         starttls, subtern, wait_log)

assert subtern  # a fixture, used by name below

BAD = "not-the-password"


def port_of(t, listener):
    return {"smtp": t.smtp_port, "submission": t.submission_port, "smtps": t.smtps_port}[listener]


def tls_session(t, listener, ctx=None, source=None):
    """A greeted, EHLOed TLS session on LISTENER (STARTTLS or implicit)."""
    if listener == "smtps":
        c = smtps_conn(t, ctx=ctx, source=source)
        c.ehlo()
        return c
    c = SMTPConn(port_of(t, listener), timeout=10 * SLOW, source=source)
    c.greet()
    c.ehlo()
    starttls(c, ctx)
    c.ehlo()
    return c


# STARTTLS command injection (RFC 3207 4.2, CVE-2011-0411 and kin)


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_plaintext_pipelined_after_starttls_is_never_answered(subtern, listener):
    with SMTPConn(port_of(subtern, listener), timeout=10 * SLOW) as c:
        c.greet()
        c.ehlo()
        c.send(b"STARTTLS\r\nNOOP\r\n")  # one write, one segment on loopback
        check(c.reply(), 220, "2.0.0", what="STARTTLS")
        assert not c.buf, "a reply after 220 in plaintext: %r" % c.buf
        c.sock = client_context().wrap_socket(c.sock)
        # The first reply under TLS is the one to what we send now: a
        # multi-line EHLO reply, not a one-line 250 to the injected NOOP.
        r = c.ehlo()
        assert len(r.lines) > 1 and r.lines[0].startswith("250-" + HOSTNAME), r
        assert offers_auth(r), r
        c.expect("RSET", 250)
        assert not c.pending(0.5 * SLOW), "an extra reply: %r" % c.buf
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")


def test_injected_transaction_after_starttls_is_not_executed(subtern):
    """A whole injected transaction must not deliver anything."""
    subject = "injected %s" % unique_id()
    with SMTPConn(subtern.smtp_port, timeout=10 * SLOW) as c:
        c.greet()
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<" + RCPT.encode()
               + b">\r\nDATA\r\nSubject: " + subject.encode() + b"\r\n\r\nx\r\n.\r\n")
        check(c.reply(), 220, "2.0.0")
        assert not c.buf, c.buf
        c.sock = client_context().wrap_socket(c.sock)
        c.ehlo()
        # No transaction is open: RCPT without MAIL is out of sequence.
        c.expect("RCPT TO:<%s>" % RCPT, 503)
        c.expect("NOOP", 250)
    time.sleep(0.3)
    assert subtern.messages(RCPT) == []


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_session_starts_over_after_starttls(subtern, listener):
    """RFC 3207 4.2: the EHLO given in plaintext no longer counts."""
    with SMTPConn(port_of(subtern, listener), timeout=10 * SLOW) as c:
        c.greet()
        c.ehlo()
        starttls(c)
        c.expect("MAIL FROM:<%s>" % USER, 503)
        c.ehlo()
        c.expect("STARTTLS", 503, "5.5.1")


# protocol versions


@pytest.fixture(scope="module")
def legacy_client_works():
    """Prove that this client can speak TLS 1.0 and 1.1 at all (against
    openssl s_server), so that a refusal by ternd means something."""
    with tempfile.TemporaryDirectory() as d:
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            got = legacy_handshake_works(d, version)
            if not got.startswith("TLSv1"):
                pytest.skip("this OpenSSL client cannot speak %s: %s" % (version.name, got))


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1],
                         ids=["TLSv1.0", "TLSv1.1"])
@pytest.mark.parametrize("listener", ["smtp", "submission", "smtps"])
def test_tls_1_0_and_1_1_are_refused(subtern, legacy_client_works, listener, version):
    c = SMTPConn(port_of(subtern, listener), timeout=10 * SLOW)
    try:
        if listener != "smtps":
            c.greet()
            c.ehlo()
            c.expect("STARTTLS", 220)
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            c.sock = legacy_context(version).wrap_socket(c.sock)
            # Should a handshake complete, show what was negotiated.
            pytest.fail("handshake completed with %s" % c.sock.version())
    finally:
        c.close()
    # The daemon is unharmed and serves the next client.
    with tls_session(subtern, listener) as c:
        c.expect("NOOP", 250)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["TLSv1.2", "TLSv1.3"])
@pytest.mark.parametrize("listener", ["submission", "smtps"])
def test_tls_1_2_and_1_3_work(subtern, listener, version):
    ctx = client_context(minimum=version, maximum=version)
    name = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    subject = "%s %s %s" % (listener, name, unique_id())
    with tls_session(subtern, listener, ctx=ctx) as c:
        assert c.sock.version() == name
        cipher = c.sock.cipher()[0]
        if version == ssl.TLSVersion.TLSv1_2:
            # Forward secrecy and AEAD only.
            assert cipher.startswith(("ECDHE-", "DHE-")), cipher
            assert "GCM" in cipher or "CHACHA20" in cipher, cipher
        assert c.sock.compression() is None
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")
        c.deliver([RCPT], make_message(subject, sender=USER, to=RCPT), sender=USER)
    raw = wait_subject(subtern, subject)
    assert ("using %s with cipher %s" % (name, cipher)).encode() in raw.replace(b"\n\t", b" ")


def wait_subject(t, subject):
    """The message with SUBJECT in carol's Maildir, once it is there."""
    def find():
        for raw in t.read_messages(RCPT):
            if ("Subject: " + subject).encode() in raw:
                return raw
        return None

    return poll(find, 10 * SLOW, what="message %r" % subject)


def test_default_connection_prefers_tls_1_3(subtern):
    with tls_session(subtern, "submission") as c:
        assert c.sock.version() == "TLSv1.3"


# certificates


def test_generated_certificate_is_served_and_kept_private(subtern):
    tls_dir = os.path.join(subtern.data_dir, "tls")
    cert, key = os.path.join(tls_dir, "cert.pem"), os.path.join(tls_dir, "key.pem")
    assert os.stat(key).st_mode & 0o077 == 0, oct(os.stat(key).st_mode)
    with open(cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    for listener in ("smtp", "submission", "smtps"):
        with tls_session(subtern, listener) as c:
            assert c.sock.getpeercert(binary_form=True) == der, listener
            assert peer_cn(c.sock) == HOSTNAME
    # The pair is generated once and reused after a restart.
    subtern.stop()
    subtern.start()
    with tls_session(subtern, "smtps") as c:
        assert c.sock.getpeercert(binary_form=True) == der


def test_certificate_swap_on_sighup(tern_factory):
    t = make_subtern(tern_factory)
    certs = os.path.join(t.dir, "certs")
    os.makedirs(certs)
    os.chmod(certs, 0o755)
    cert, key = make_cert(certs, "cert-a.tern.test", "live")
    t.write_config(tls_cert=cert, tls_key=key)
    t.start()
    populate(t)

    old = tls_session(t, "submission")
    try:
        assert peer_cn(old.sock) == "cert-a.tern.test"
        check(auth_plain(old, USER, PASSWORD), 235, "2.7.0")
        with tls_session(t, "smtps") as c:
            assert peer_cn(c.sock) == "cert-a.tern.test"

        # Replace both files (a renewal), then SIGHUP.
        new_cert, new_key = make_cert(certs, "cert-b.tern.test", "next")
        os.replace(new_cert, cert)
        os.replace(new_key, key)
        assert "cert-b.tern.test" in file_subject(cert)
        mark = len(t.log())
        t.send_signal(signal.SIGHUP)
        wait_log(t, "TLS certificate reloaded", start=mark)

        for listener in ("smtp", "submission", "smtps"):
            with tls_session(t, listener) as c:
                assert peer_cn(c.sock) == "cert-b.tern.test", listener
        # The connection opened before the swap goes on, and can send.
        old.expect("NOOP", 250)
        subject = "across the swap %s" % unique_id()
        old.deliver([RCPT], make_message(subject, sender=USER, to=RCPT), sender=USER)
        assert peer_cn(old.sock) == "cert-a.tern.test"
    finally:
        old.close()
    wait_subject(t, subject)


def test_bad_certificate_on_sighup_keeps_the_old_one(tern_factory):
    t = make_subtern(tern_factory)
    certs = os.path.join(t.dir, "certs")
    os.makedirs(certs)
    os.chmod(certs, 0o755)
    cert, key = make_cert(certs, "cert-a.tern.test", "live")
    t.write_config(tls_cert=cert, tls_key=key)
    t.start()
    populate(t)
    # A key that does not match the certificate.
    _, other_key = make_cert(certs, "cert-c.tern.test", "other")
    os.replace(other_key, key)
    mark = len(t.log())
    t.send_signal(signal.SIGHUP)
    wait_log(t, "TLS reload failed", start=mark)
    assert t.running()
    with tls_session(t, "submission") as c:
        assert peer_cn(c.sock) == "cert-a.tern.test"
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")


# limits on AUTH


@pytest.mark.tern_config(auth_failure_delay="1s")
def test_failed_auth_is_slowed_and_does_not_stall_others(subtern):
    with tls_session(subtern, "submission") as a, tls_session(subtern, "smtps") as b:
        t0 = time.monotonic()
        a.send("AUTH PLAIN %s\r\n" % plain_token(USER, BAD))
        # Meanwhile another client is served, and a has no answer yet.
        b.expect("NOOP", 250)
        assert not a.pending(0.05), "the failure was answered at once: %r" % a.buf
        check(a.reply(), 535, "5.7.8")
        first = time.monotonic() - t0
        assert first >= 0.9, "failed AUTH answered after %.2fs" % first
        # The second failure on the connection waits twice as long.
        t0 = time.monotonic()
        check(auth_plain(a, USER, BAD), 535, "5.7.8")
        second = time.monotonic() - t0
        assert second >= 1.8, "second failure answered after %.2fs" % second
        # A success is not delayed into a failure: the right password works.
        check(auth_plain(a, USER, PASSWORD), 235, "2.7.0")


@pytest.mark.parametrize("listener", ["submission", "smtps"])
def test_third_failure_on_a_connection_gets_421_and_close(subtern, listener):
    with tls_session(subtern, listener) as c:
        check(auth_plain(c, USER, BAD), 535, "5.7.8")
        check(auth_login(c, "nosuch@tern.test", BAD), 535, "5.7.8")
        c.send("AUTH PLAIN %s\r\n" % plain_token(USER, BAD))
        check(c.reply(), 421, "4.7.0")
        assert c.wait_closed(10 * SLOW), "still open after the 421"


@pytest.mark.tern_config(auth_max_failures=1)
def test_auth_max_failures_1_closes_at_the_first(subtern):
    with tls_session(subtern, "smtps") as c:
        check(auth_plain(c, USER, BAD), 421, "4.7.0")
        assert c.wait_closed(10 * SLOW)


@pytest.mark.tern_config(auth_lockout_failures=4)
@pytest.mark.parametrize("listener", ["submission", "smtps"])
def test_brute_force_over_many_connections_is_locked_out(subtern, listener):
    # Four failures over two connections (two each, under auth_max_failures).
    for _ in range(2):
        with tls_session(subtern, "submission") as c:
            for _ in range(2):
                check(auth_plain(c, USER, BAD), 535, "5.7.8")
    # Locked: even the right password is refused, on every listener.
    with tls_session(subtern, listener) as c:
        c.send("AUTH PLAIN %s\r\n" % plain_token(USER, PASSWORD))
        check(c.reply(), 421, "4.7.0")
        assert c.wait_closed(10 * SLOW), "still open after the lockout 421"
    assert "authenticated as" not in subtern.log()
    # The lockout is per client address: another address logs in.
    with tls_session(subtern, "submission", source="127.0.0.2") as c:
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")


@pytest.mark.tern_config(auth_lockout_failures=4)
def test_locked_out_address_cannot_log_in_with_smtplib(subtern):
    for _ in range(4):
        with smtps_conn(subtern) as c:
            c.ehlo()
            check(auth_plain(c, USER, BAD), 535, "5.7.8")
    with smtplib.SMTP_SSL("127.0.0.1", subtern.smtps_port, context=client_context(),
                          timeout=10 * SLOW) as s:
        with pytest.raises((smtplib.SMTPAuthenticationError, smtplib.SMTPServerDisconnected)) \
                as e:
            s.login(USER, PASSWORD)
        if isinstance(e.value, smtplib.SMTPAuthenticationError):
            assert e.value.smtp_code == 421


@pytest.mark.tern_config(auth_lockout_failures=3, auth_lockout_time="2s")
def test_lockout_ends_after_lockout_time(subtern):
    with tls_session(subtern, "smtps") as c:
        for _ in range(2):
            check(auth_plain(c, USER, BAD), 535, "5.7.8")
    with tls_session(subtern, "smtps") as c:
        check(auth_plain(c, USER, BAD), 535, "5.7.8")
    with tls_session(subtern, "smtps") as c:
        check(auth_plain(c, USER, PASSWORD), 421, "4.7.0")
    time.sleep(3.2)
    with tls_session(subtern, "smtps") as c:
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")


# the reply before a close: under STARTTLS the connection is a TLS filter
# over the plain one, and the last reply must leave both before the close


@pytest.mark.parametrize("listener", ["smtp", "submission", "smtps"])
def test_quit_under_tls_gets_221(subtern, listener):
    with tls_session(subtern, listener) as c:
        c.send("QUIT\r\n")
        check(c.reply(), 221)
        assert c.wait_closed(10 * SLOW)


def test_quit_in_plaintext_gets_221(subtern):
    """The control for the test above: the same without TLS."""
    with SMTPConn(subtern.submission_port, timeout=10 * SLOW) as c:
        c.greet()
        c.ehlo()
        check(c.cmd("QUIT"), 221)
        assert c.wait_closed(10 * SLOW)
