"""test_delivery.py - what lands in the Maildir: real clients (swaks,
smtplib), trace headers, file names and modes, aliases, address forms.

Contracts (DESIGN.md, Mailboxes): DATA_DIR/mailboxes/DOMAIN/LOCAL/Maildir/new,
lower case, LF line ends, ",S=<size>" in the file name (Maildir++), files of
the daemon's user with mode 0600 in 0700 directories; the message starts
with Return-Path and Delivered-To and a Received header naming the host and
the queue id (RFC 5321 4.4); aliases expand recursively, loops are refused
at RCPT; addresses are case-insensitive and user+tag reaches user.
"""
import email.utils
import os
import re
import smtplib
import subprocess
import time

from helpers import (DAEMON_PW, HOSTNAME, QUEUED_RE, check, data_block, file_mode,
                     header_block, make_message, parse, to_lf, unique_id)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def smtplib_send(tern, rcpts, message, sender="alice@example.org"):
    """Send with smtplib; the queue id from the 250 after the data."""
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, local_hostname="client.example",
                      timeout=30) as s:
        s.ehlo()
        code, _ = s.mail(sender)
        assert code == 250
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = s.data(message)
        assert code == 250, (code, text)
    m = QUEUED_RE.search(text.decode())
    assert m, text
    return m.group(1)


def delivered_to(raw):
    return parse(raw)["Delivered-To"].strip().lower()


def settle_and_count(tern, addresses, expected):
    """Wait for every address to have EXPECTED messages, wait a little for
    duplicates that should not come, and return the counts."""
    for a in addresses:
        tern.wait_messages(a, expected)
    time.sleep(0.3)
    return {a: len(tern.messages(a)) for a in addresses}


def test_swaks_message_is_delivered_to_maildir_new(tern):
    msgid = "<%s@swaks.example>" % unique_id()
    cp = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(tern.smtp_port),
         "--helo", "client.example", "--from", "alice@example.org", "--to", "bob@tern.test",
         "--header", "Subject: via swaks", "--header", "Message-Id: " + msgid,
         "--body", "hello from swaks"],
        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    path = tern.wait_messages("bob@tern.test", 1)[0]
    assert os.path.dirname(path) == os.path.join(
        tern.data_dir, "mailboxes", "tern.test", "bob", "Maildir", "new")
    raw = read(path)
    assert msgid.encode() in raw and b"hello from swaks" in raw and b"Subject: via swaks" in raw


def test_smtplib_message_is_delivered_unchanged(tern):
    message = make_message("via smtplib", body="hello from smtplib\n")
    smtplib_send(tern, ["bob@tern.test"], message)
    raw = read(tern.wait_messages("bob@tern.test", 1)[0])
    assert raw.endswith(to_lf(message)), raw


def test_delivered_message_starts_with_trace_headers(tern):
    message = make_message("traced")
    qid = smtplib_send(tern, ["bob@tern.test"], message)
    raw = read(tern.wait_messages("bob@tern.test", 1)[0])
    lines = raw.split(b"\n")
    assert lines[0] == b"Return-Path: <alice@example.org>", lines[:3]
    assert lines[1] == b"Delivered-To: bob@tern.test", lines[:3]
    received = [h for h in header_block(raw) if h.lower().startswith("received:")]
    assert received, raw[:500]
    ours = received[0]
    assert ours.startswith("Received: from "), ours
    assert re.search(r"\bby %s\b" % re.escape(HOSTNAME), ours), ours
    assert "with ESMTP" in ours, ours
    assert re.search(r"\bid %s\b" % re.escape(qid), ours), "queue id %s missing: %s" % (qid, ours)
    date = ours.rsplit(";", 1)[1].strip()
    assert email.utils.parsedate_to_datetime(date) is not None, ours
    assert raw.index(b"Received:") < raw.index(b"Subject: traced"), "trace headers go first"


def test_maildir_file_name_carries_its_size_and_lf_line_ends(tern):
    smtplib_send(tern, ["bob@tern.test"], make_message("sized", body="a\nb\nc\n"))
    path = tern.wait_messages("bob@tern.test", 1)[0]
    m = re.search(r",S=(\d+)", os.path.basename(path))
    assert m, "no ,S=<size> in %s" % os.path.basename(path)
    assert int(m.group(1)) == os.path.getsize(path)
    assert b"\r" not in read(path), "Maildir files use LF line ends"


def test_maildir_belongs_to_daemon_user(tern):
    smtplib_send(tern, ["bob@tern.test"], make_message("owned"))
    path = tern.wait_messages("bob@tern.test", 1)[0]
    st = os.stat(path)
    assert st.st_uid == DAEMON_PW.pw_uid, "message owned by uid %d" % st.st_uid
    assert file_mode(path) == 0o600, oct(file_mode(path))
    maildir = tern.maildir("bob@tern.test")
    for d in (maildir, maildir + "/new", maildir + "/cur", maildir + "/tmp"):
        assert os.stat(d).st_uid == DAEMON_PW.pw_uid, d
        assert file_mode(d) == 0o700, "%s is %o" % (d, file_mode(d))


def test_body_is_stored_byte_for_byte(tern):
    body = ("first\n.leading dot\n..two dots\n.\n\nGrüße aus Köln\n"
            "trailing spaces   \n\ttab\n" + "L" * 900 + "\nend\n")
    message = make_message("exact", body=body)
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org> BODY=8BITMIME", 250, "2.1.0")
        c.expect("RCPT TO:<bob@tern.test>", 250)
        c.expect("DATA", 354)
        c.send(data_block(message))
        check(c.reply(), 250, "2.0.0")
    raw = read(tern.wait_messages("bob@tern.test", 1)[0])
    assert raw.endswith(to_lf(message)), raw[-400:]


def test_recursive_alias_delivers_to_final_user(tern):
    tern.add_alias("first@tern.test", "second@tern.test")
    tern.add_alias("second@tern.test", "bob@tern.test")
    smtplib_send(tern, ["first@tern.test"], make_message("through two aliases",
                                                         to="first@tern.test"))
    raw = read(tern.wait_messages("bob@tern.test", 1)[0])
    assert delivered_to(raw) == "bob@tern.test"
    assert b"Subject: through two aliases" in raw
    for alias in ("first", "second"):
        assert not os.path.exists(tern.maildir("%s@tern.test" % alias)), "alias got a mailbox"


def test_alias_loop_is_refused_at_rcpt(tern):
    tern.add_alias("ping@tern.test", "pong@tern.test")
    tern.add_alias("pong@tern.test", "ping@tern.test")
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        check(c.cmd("RCPT TO:<ping@tern.test>"), 550, what="alias loop")
        c.expect("RCPT TO:<bob@tern.test>", 250, "2.1.5")


def test_alias_to_several_users_delivers_one_copy_each(tern):
    tern.add_user("carol@tern.test")
    tern.add_alias("team@tern.test", "bob@tern.test", "carol@tern.test")
    smtplib_send(tern, ["team@tern.test"], make_message("to the team", to="team@tern.test"))
    counts = settle_and_count(tern, ["bob@tern.test", "carol@tern.test"], 1)
    assert counts == {"bob@tern.test": 1, "carol@tern.test": 1}, counts
    for who in ("bob", "carol"):
        raw = tern.read_messages("%s@tern.test" % who)[0]
        assert delivered_to(raw) == "%s@tern.test" % who


def test_each_recipient_of_one_transaction_gets_a_copy(tern):
    tern.add_user("carol@tern.test")
    smtplib_send(tern, ["bob@tern.test", "carol@tern.test"], make_message("for two"))
    counts = settle_and_count(tern, ["bob@tern.test", "carol@tern.test"], 1)
    assert counts == {"bob@tern.test": 1, "carol@tern.test": 1}, counts


def test_upper_case_address_reaches_lower_case_mailbox(tern):
    smtplib_send(tern, ["BOB@TERN.TEST"], make_message("shouting", to="BOB@TERN.TEST"))
    raw = read(tern.wait_messages("bob@tern.test", 1)[0])
    assert b"Subject: shouting" in raw
    assert delivered_to(raw) == "bob@tern.test"
    assert sorted(os.listdir(os.path.join(tern.data_dir, "mailboxes"))) == ["tern.test"]
    assert os.listdir(os.path.join(tern.data_dir, "mailboxes", "tern.test")) == ["bob"]


def test_plus_address_reaches_user(tern):
    smtplib_send(tern, ["bob+news@tern.test"], make_message("tagged", to="bob+news@tern.test"))
    raw = read(tern.wait_messages("bob@tern.test", 1)[0])
    assert b"Subject: tagged" in raw
    assert delivered_to(raw) in ("bob@tern.test", "bob+news@tern.test")
    assert os.listdir(os.path.join(tern.data_dir, "mailboxes", "tern.test")) == ["bob"]


def test_many_messages_on_one_connection_are_stored_apart(tern):
    sent = {}
    with tern.smtp(ehlo=True) as c:
        for i in range(10):
            msgid = "<%d.%s@client.example>" % (i, unique_id())
            sent[msgid] = make_message("number %d" % i, msgid=msgid, body="body %d\n" % i)
            c.deliver(["bob@tern.test"], sent[msgid])
    paths = tern.wait_messages("bob@tern.test", 10)
    assert len(set(os.path.basename(p) for p in paths)) == 10
    got = {}
    for p in paths:
        raw = read(p)
        got[parse(raw)["Message-ID"]] = raw
    assert set(got) == set(sent)
    for msgid, message in sent.items():
        assert got[msgid].endswith(to_lf(message))
