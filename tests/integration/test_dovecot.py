"""test_dovecot.py - mail received by tern is readable by a real IMAP server.

The contract (DESIGN.md, Mailboxes): Dovecot with
mail_location = maildir:DATA_DIR/mailboxes/%d/%n/Maildir lists what tern
delivered.  The first test checks the Dovecot fixture itself on a Maildir
built by hand, so that a failure of the second one points at tern.
"""
import os
import smtplib
import subprocess

from helpers import DAEMON_PW, make_message


def imap_subjects(dovecot, address, password):
    """Log in over IMAP, select INBOX and return the subjects of ALL."""
    m = dovecot.imap(address, password)
    try:
        typ, _ = m.select("INBOX")
        assert typ == "OK"
        typ, data = m.search(None, "ALL")
        assert typ == "OK"
        subjects = []
        for num in data[0].split():
            typ, parts = m.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK"
            header = parts[0][1].decode("utf-8", "replace").strip()
            assert header.lower().startswith("subject:"), header
            subjects.append(header.split(":", 1)[1].strip())
        return sorted(subjects)
    finally:
        try:
            m.logout()
        except Exception:
            pass


def make_owned_dirs(path, uid, gid):
    """mkdir -p PATH with every new directory 0700 and owned by UID:GID."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for p in reversed(missing):
        os.mkdir(p, 0o700)
        os.chown(p, uid, gid)


def test_dovecot_fixture_reads_handmade_maildir(dovecot):
    uid, gid = DAEMON_PW.pw_uid, DAEMON_PW.pw_gid
    maildir = os.path.join(dovecot.data_dir, "mailboxes", "hand.test", "alice", "Maildir")
    for sub in ("new", "cur", "tmp"):
        make_owned_dirs(os.path.join(maildir, sub), uid, gid)
    body = b"Subject: built by hand\nFrom: <x@example.org>\n\nhello\n"
    path = os.path.join(maildir, "new", "1700000000.M1P1.test,S=%d" % len(body))
    with open(path, "wb") as f:
        f.write(body)
    os.chown(path, uid, gid)
    os.chmod(path, 0o600)
    dovecot.add_user("alice@hand.test", "pw-alice")

    assert imap_subjects(dovecot, "alice@hand.test", "pw-alice") == ["built by hand"]


def test_mail_from_swaks_and_smtplib_is_listed_over_imap(tern_factory, dovecot):
    t = tern_factory(data_dir=dovecot.data_dir)
    t.start()
    t.add_domain("tern.test")
    t.add_user("dave@tern.test", "dave-pw")
    dovecot.add_user("dave@tern.test", "imap-pw")

    swaks = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(t.smtp_port),
         "--helo", "client.example", "--from", "alice@example.org",
         "--to", "dave@tern.test", "--header", "Subject: sent with swaks",
         "--body", "from swaks"],
        capture_output=True, text=True, timeout=60)
    assert swaks.returncode == 0, swaks.stdout + swaks.stderr

    with smtplib.SMTP("127.0.0.1", t.smtp_port, local_hostname="client.example",
                      timeout=30) as s:
        s.sendmail("alice@example.org", ["dave@tern.test"],
                   make_message("sent with smtplib", to="dave@tern.test"))

    t.wait_messages("dave@tern.test", 2)
    assert imap_subjects(dovecot, "dave@tern.test", "imap-pw") == \
        ["sent with smtplib", "sent with swaks"]
