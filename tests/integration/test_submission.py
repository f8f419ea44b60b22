"""test_submission.py - mail submission from real clients (RFC 6409) over
STARTTLS (RFC 3207) and implicit TLS (RFC 8314) with AUTH (RFC 4954).

smtplib, swaks and curl log in on the submission and smtps ports and their
message lands in a local user's Maildir with a Received header that says
ESMTPSA and the TLS version.  The rules of DESIGN.md: AUTH only under TLS
(538 5.7.11 before), MAIL without AUTH 530 5.7.0 on submission, the same
535 5.7.8 for a wrong password and an unknown user, a sender the user does
not own 553 5.7.1 (own address, +tag and aliases pointing to the user are
fine), no null sender on submission, an authenticated user may relay, and
a message without Date or Message-ID gets both (RFC 6409 8.2, 8.3).
"""
import email.utils
import os
import smtplib
import subprocess

import pytest

from helpers import (SLOW, SMTPConn, check, data_block, header_block, make_message, parse,
                     poll, unique_id)
from tls_helpers import (OTHER, PASSWORD, RCPT, USER, auth_login, auth_plain, client_context,
                         offers_auth, smtps_conn, starttls, submission_conn, subtern)

assert subtern  # a fixture, used by name below

TIMEOUT = 30 * SLOW


def delivered(t, address, subject):
    """Wait for the message with SUBJECT in ADDRESS's Maildir; its bytes."""
    def find():
        for raw in t.read_messages(address):
            if parse(raw)["Subject"] == subject:
                return raw
        return None

    return poll(find, 10 * SLOW, what="a message %r for %s" % (subject, address))


def received(raw):
    """The first (our) Received header, unfolded."""
    for line in header_block(raw):
        if line.lower().startswith("received:"):
            return line
    raise AssertionError("no Received header in:\n%r" % raw[:2000])


def assert_submitted(raw, tls_version="TLSv1.3"):
    """What every message submitted by bob over TLS must show."""
    rcv = received(raw)
    assert "with ESMTPSA" in rcv, rcv
    assert "using %s" % tls_version in rcv, rcv
    assert "authenticated as %s" % USER in rcv, rcv


# real clients: smtplib, swaks, curl


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_smtplib_starttls_login_on_submission_delivers(subtern, mech):
    subject = "smtplib starttls %s %s" % (mech, unique_id())
    with smtplib.SMTP("127.0.0.1", subtern.submission_port, local_hostname="client.example",
                      timeout=TIMEOUT) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        assert not s.has_extn("auth"), "AUTH offered before TLS: %r" % s.esmtp_features
        code, _ = s.starttls(context=client_context())
        assert code == 220
        s.ehlo()
        assert "PLAIN" in s.esmtp_features["auth"].upper().split()
        assert "LOGIN" in s.esmtp_features["auth"].upper().split()
        s.user, s.password = USER, PASSWORD
        code, text = s.auth(mech, getattr(s, "auth_" + mech.lower()))
        assert code == 235, text
        refused = s.sendmail(USER, [RCPT], make_message(subject, sender=USER, to=RCPT))
        assert refused == {}
    raw = delivered(subtern, RCPT, subject)
    assert_submitted(raw)
    assert b"Hello." in raw


def test_smtplib_smtp_ssl_login_on_smtps_delivers(subtern):
    subject = "smtplib smtps %s" % unique_id()
    with smtplib.SMTP_SSL("127.0.0.1", subtern.smtps_port, local_hostname="client.example",
                          context=client_context(), timeout=TIMEOUT) as s:
        code, _ = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls"), "STARTTLS offered inside TLS"
        s.login(USER, PASSWORD)
        s.sendmail(USER, [RCPT], make_message(subject, sender=USER, to=RCPT))
    assert_submitted(delivered(subtern, RCPT, subject))


def swaks(port, *args, auth=("--auth", "PLAIN"), subject="swaks"):
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(port),
            "--helo", "client.example", "--from", USER, "--to", RCPT,
            "--auth-user", USER, "--auth-password", PASSWORD,
            "--header", "Subject: " + subject, "--body", "Sent by swaks.",
            "--timeout", str(TIMEOUT)] + list(auth) + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=2 * TIMEOUT)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_tls_auth_on_submission_delivers(subtern, mech):
    subject = "swaks tls %s %s" % (mech, unique_id())
    cp = swaks(subtern.submission_port, "--tls", auth=("--auth", mech), subject=subject)
    # Exit 0 includes the 221 to QUIT, the last reply under TLS.
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "<~  235 2.7.0" in cp.stdout, cp.stdout
    raw = delivered(subtern, RCPT, subject)
    assert_submitted(raw)
    assert b"Sent by swaks." in raw


def test_swaks_tls_on_connect_on_smtps_delivers(subtern):
    subject = "swaks tlsc %s" % unique_id()
    cp = swaks(subtern.smtps_port, "--tlsc", subject=subject)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert_submitted(delivered(subtern, RCPT, subject))


def curl(t, url, subject, *extra):
    """curl uploading a message from bob to carol to URL; CompletedProcess."""
    path = os.path.join(t.dir, "curl-%s.eml" % unique_id())
    with open(path, "wb") as f:
        f.write(make_message(subject, body="Sent by curl.\n", sender=USER, to=RCPT))
    argv = ["curl", "-sS", "--max-time", str(TIMEOUT), "-k",
            "--user", "%s:%s" % (USER, PASSWORD), "--mail-from", USER, "--mail-rcpt", RCPT,
            "--upload-file", path] + list(extra) + [url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=2 * TIMEOUT)


def test_curl_smtp_ssl_reqd_on_submission_delivers(subtern):
    subject = "curl starttls %s" % unique_id()
    # --ssl-reqd: STARTTLS or fail, never the login in plaintext.
    cp = curl(subtern, "smtp://127.0.0.1:%d" % subtern.submission_port, subject, "--ssl-reqd")
    assert cp.returncode == 0, cp.stderr
    raw = delivered(subtern, RCPT, subject)
    assert_submitted(raw)
    assert b"Sent by curl." in raw


def test_curl_smtps_delivers(subtern):
    subject = "curl smtps %s" % unique_id()
    cp = curl(subtern, "smtps://127.0.0.1:%d" % subtern.smtps_port, subject)
    assert cp.returncode == 0, cp.stderr
    assert_submitted(delivered(subtern, RCPT, subject))


# AUTH only under TLS


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_auth_before_tls_538_and_offered_only_after_starttls(subtern, listener):
    port = subtern.smtp_port if listener == "smtp" else subtern.submission_port
    with SMTPConn(port, timeout=10 * SLOW) as c:
        c.greet()
        r = c.ehlo()
        assert not offers_auth(r), "AUTH offered before TLS:\n%s" % r
        assert "STARTTLS" in [k.split()[0] for k in r.texts[1:]], r
        c.expect("AUTH PLAIN " + "AGJvYkB0ZXJuLnRlc3QAc2VjcmV0", 538, "5.7.11")
        c.expect("AUTH LOGIN", 538, "5.7.11")
        starttls(c)
        r = c.ehlo()
        assert offers_auth(r), "no AUTH after STARTTLS:\n%s" % r
        assert "STARTTLS" not in [k.split()[0] for k in r.texts[1:]], r
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")


def test_smtps_offers_auth_at_once(subtern):
    with smtps_conn(subtern) as c:
        r = c.ehlo()
        assert offers_auth(r), r
        assert "AUTH PLAIN LOGIN" in [k.upper() for k in r.texts[1:]], r


@pytest.mark.parametrize("listener", ["submission", "smtps"])
def test_mail_without_auth_530_5_7_0(subtern, listener):
    c = submission_conn(subtern) if listener == "submission" else smtps_conn(subtern)
    with c:
        if listener == "smtps":
            c.ehlo()
        c.expect("MAIL FROM:<%s>" % USER, 530, "5.7.0")
        # Nor may anyone drop mail for a local user here without AUTH.
        c.expect("RCPT TO:<%s>" % RCPT, 503)
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")
        c.expect("MAIL FROM:<%s>" % USER, 250)


def test_mail_without_auth_before_tls_on_submission_530(subtern):
    with SMTPConn(subtern.submission_port, timeout=10 * SLOW) as c:
        c.greet()
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % USER, 530, "5.7.0")


@pytest.mark.parametrize("login", [auth_plain, auth_login], ids=["PLAIN", "LOGIN"])
def test_wrong_password_and_unknown_user_get_the_same_reply(subtern, login):
    replies = {}
    for case, user, password in [("wrong password", USER, "not-the-password"),
                                 ("unknown user", "nosuch@tern.test", PASSWORD),
                                 ("unknown domain", "bob@elsewhere.example", PASSWORD)]:
        with submission_conn(subtern) as c:
            replies[case] = check(login(c, user, password), 535, "5.7.8", what=case)
            # The session goes on, unauthenticated.
            c.expect("MAIL FROM:<%s>" % USER, 530, "5.7.0")
    lines = {case: r.lines for case, r in replies.items()}
    assert len(set(map(tuple, lines.values()))) == 1, lines


def test_auth_twice_is_refused_503(subtern):
    with submission_conn(subtern, auth=True) as c:
        check(auth_plain(c, USER, PASSWORD), 503, "5.5.1")


# the sender must belong to the authenticated user


def test_spoofed_sender_553_5_7_1(subtern):
    subtern.add_alias("team@tern.test", OTHER)
    with submission_conn(subtern, auth=True) as c:
        for sender in (OTHER, "team@tern.test", "someone@example.org", "bob@example.org",
                       "bob@mx.tern.test", "alice+bob@tern.test"):
            c.expect("MAIL FROM:<%s>" % sender, 553, "5.7.1")
        # Still usable: the own address goes through afterwards.
        c.expect("MAIL FROM:<%s>" % USER, 250)
        c.expect("RCPT TO:<%s>" % RCPT, 250)
        c.expect("RSET", 250)
    assert subtern.messages(RCPT) == []


@pytest.mark.parametrize("sender", ["bob+news@tern.test", "bob+a.b-c@tern.test", "sales@tern.test",
                                    "Bob@Tern.Test"])
def test_owned_sender_forms_are_accepted_and_delivered(subtern, sender):
    subtern.add_alias("sales@tern.test", USER)
    subject = "as %s %s" % (sender, unique_id())
    with submission_conn(subtern, auth=True) as c:
        c.deliver([RCPT], make_message(subject, sender=sender, to=RCPT), sender=sender)
    raw = delivered(subtern, RCPT, subject)
    assert_submitted(raw)
    assert parse(raw)["Return-Path"].strip() == "<%s>" % sender


def test_alias_to_several_users_including_bob_is_owned(subtern):
    """An alias that points to the user (among others) is the user's to use."""
    subtern.add_alias("staff@tern.test", OTHER, USER)
    with submission_conn(subtern, auth=True) as c:
        c.expect("MAIL FROM:<staff@tern.test>", 250)


def test_spoofed_sender_refused_on_smtps_too(subtern):
    with smtps_conn(subtern) as c:
        c.ehlo()
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")
        c.expect("MAIL FROM:<%s>" % OTHER, 553, "5.7.1")
        c.expect("MAIL FROM:<%s>" % USER, 250)


@pytest.mark.parametrize("listener", ["submission", "smtps"])
def test_null_sender_on_submission_553_5_7_1(subtern, listener):
    if listener == "submission":
        c = submission_conn(subtern, auth=True)
    else:
        c = smtps_conn(subtern)
        c.ehlo()
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")
    with c:
        c.expect("MAIL FROM:<>", 553, "5.7.1")
        c.expect("MAIL FROM:<%s>" % USER, 250)


def test_auth_on_port_25_after_starttls_keeps_ownership_rule(subtern):
    with SMTPConn(subtern.smtp_port, timeout=10 * SLOW) as c:
        c.greet()
        c.ehlo()
        # Unauthenticated: no relay (DESIGN.md: 554 5.7.1).
        c.expect("MAIL FROM:<%s>" % USER, 250)
        c.expect("RCPT TO:<someone@example.net>", 554, "5.7.1")
        c.expect("RSET", 250)
        starttls(c)
        c.ehlo()
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")
        c.expect("MAIL FROM:<%s>" % OTHER, 553, "5.7.1")
        c.expect("MAIL FROM:<%s>" % USER, 250)
        c.expect("RCPT TO:<someone@example.net>", 250)
        c.expect("RSET", 250)


@pytest.mark.parametrize("listener", ["submission", "smtps"])
def test_authenticated_user_may_relay_to_any_domain(subtern, listener):
    if listener == "submission":
        c = submission_conn(subtern, auth=True)
    else:
        c = smtps_conn(subtern)
        c.ehlo()
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")
    with c:
        c.expect("MAIL FROM:<%s>" % USER, 250)
        c.expect("RCPT TO:<someone@example.net>", 250)
        c.expect("RCPT TO:<%s>" % RCPT, 250)
        c.expect("RSET", 250)


# headers added on submission (RFC 6409 8)


def test_missing_date_and_message_id_are_added(subtern):
    subject = "bare %s" % unique_id()
    body = ("Subject: %s\r\nFrom: <%s>\r\nTo: <%s>\r\n\r\nNo Date, no Message-ID.\r\n"
            % (subject, USER, RCPT)).encode()
    with smtplib.SMTP("127.0.0.1", subtern.submission_port, timeout=TIMEOUT) as s:
        s.starttls(context=client_context())
        s.login(USER, PASSWORD)
        assert s.sendmail(USER, [RCPT], body) == {}
    raw = delivered(subtern, RCPT, subject)
    msg = parse(raw)
    assert len(msg.get_all("Date", [])) == 1, raw
    assert len(msg.get_all("Message-ID", [])) == 1, raw
    date = email.utils.parsedate_to_datetime(msg["Date"])
    assert date.tzinfo is not None, msg["Date"]
    msgid = msg["Message-ID"].strip()
    assert msgid.startswith("<") and msgid.endswith(">") and "@" in msgid, msgid
    assert b"No Date, no Message-ID." in raw
    # They belong to the message's header, above the blank line.
    head = raw.split(b"\n\n", 1)[0]
    assert b"\nDate:" in head and b"\nMessage-ID:" in head.replace(b"Message-Id", b"Message-ID")


def test_message_ids_added_to_two_messages_differ(subtern):
    ids = []
    for n in range(2):
        subject = "bare %d %s" % (n, unique_id())
        body = ("Subject: %s\r\n\r\nbody\r\n" % subject).encode()
        with submission_conn(subtern, auth=True) as c:
            c.begin(USER, [RCPT])
            c.send(data_block(body))
            check(c.reply(), 250)
        ids.append(parse(delivered(subtern, RCPT, subject))["Message-ID"])
    assert ids[0] and ids[1] and ids[0] != ids[1], ids


def test_existing_date_and_message_id_are_kept(subtern):
    subject = "complete %s" % unique_id()
    msgid = "<%s@client.example>" % unique_id()
    with submission_conn(subtern, auth=True) as c:
        c.deliver([RCPT], make_message(subject, sender=USER, to=RCPT, msgid=msgid), sender=USER)
    msg = parse(delivered(subtern, RCPT, subject))
    assert msg.get_all("Message-ID") == [msgid]
    assert msg.get_all("Date") == ["Mon, 01 Jan 2024 12:00:00 +0000"]


# trace


@pytest.mark.parametrize("listener", ["submission", "smtps"])
def test_received_header_says_esmtpsa_and_tls_version(subtern, listener):
    subject = "trace %s %s" % (listener, unique_id())
    if listener == "submission":
        c = submission_conn(subtern, auth=True)
    else:
        c = smtps_conn(subtern)
        c.ehlo()
        check(auth_plain(c, USER, PASSWORD), 235, "2.7.0")
    with c:
        assert c.sock.version() == "TLSv1.3"
        cipher = c.sock.cipher()[0]
        c.deliver([RCPT], make_message(subject, sender=USER, to=RCPT), sender=USER)
    rcv = received(delivered(subtern, RCPT, subject))
    assert "with ESMTPSA" in rcv, rcv
    assert "using TLSv1.3 with cipher %s" % cipher in rcv, rcv
