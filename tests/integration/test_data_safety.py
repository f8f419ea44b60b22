"""test_data_safety.py - hostile message data: bare CR/LF, SMTP smuggling,
NUL bytes, oversized messages, clients that vanish mid-message.

Contracts (DESIGN.md, Security rules and SMTP replies): the end of DATA is
exactly CRLF.CRLF (RFC 5321 4.1.1.4); a bare CR or LF in the data refuses
the message with a 5xx after that end and stores nothing, and the session
stays in sync; too large is 552 5.3.4 (RFC 1870); NUL in a command line is
500 5.5.2.  Every test ends by sending a good message in a fresh
transaction and checking that it is the only one stored.
"""
import os
import time

import pytest

from helpers import check, make_message

BAD_DATA = {
    "bare LF in body": b"Subject: bad\r\n\r\nline one\nline two\r\n",
    "bare LF in header": b"Subject: bad\nX-Other: y\r\n\r\nbody\r\n",
    "bare CR in body": b"Subject: bad\r\n\r\nline one\rline two\r\n",
    "bare CR in header": b"Subject: bad\rX-Other: y\r\n\r\nbody\r\n",
    "LF CR instead of CRLF": b"Subject: bad\r\n\r\nline one\n\rline two\r\n",
    "NUL in body": b"Subject: bad\r\n\r\nbin\x00ary\r\n",
}

SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@tern.test>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
SEPARATORS = [b"\n.\r\n", b"\r.\r", b"\n.\n", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n"]


def finish_with_good_message(tern, c, subject="the good one"):
    """In the same session: the server is in sync (NOOP), a good message is
    accepted, and in the end it is the only message in bob's Maildir."""
    c.expect("NOOP", 250, "2.0.0")
    c.deliver(["bob@tern.test"], make_message(subject))
    assert_only_message(tern, subject)


def assert_only_message(tern, subject):
    tern.wait_messages("bob@tern.test", 1)
    time.sleep(0.3)  # let a wrongly accepted message land too, if there were one
    raws = tern.read_messages("bob@tern.test")
    assert len(raws) == 1, "expected only %r, found %d messages:\n%r" % (subject, len(raws), raws)
    assert ("Subject: %s\n" % subject).encode() in raws[0]
    tmp = os.path.join(tern.maildir("bob@tern.test"), "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == [], "left in tmp: %s" % os.listdir(tmp)


def test_good_message_alone_is_stored(tern):
    """The harness itself: the checks below pass for well-formed data."""
    with tern.smtp(ehlo=True) as c:
        finish_with_good_message(tern, c)


@pytest.mark.parametrize("data", BAD_DATA.values(), ids=list(BAD_DATA))
def test_bare_cr_lf_or_nul_refuses_message(tern, data):
    with tern.smtp(ehlo=True) as c:
        c.begin("alice@example.org", ["bob@tern.test"])
        c.send(data)
        assert not c.pending(0.3), "replied before the end of data: %r" % c.buf
        c.send(b".\r\n")
        check(c.reply(), 5, what="message with bad line ends or NUL")
        finish_with_good_message(tern, c)


def test_bare_lf_refuses_message(tern):
    """The classic case by its own name: LF alone ends a body line."""
    with tern.smtp(ehlo=True) as c:
        c.begin("alice@example.org", ["bob@tern.test"])
        c.send(b"Subject: lf\r\n\r\nhello\nworld\r\n.\r\n")
        check(c.reply(), 5, what="bare LF")
        finish_with_good_message(tern, c)


@pytest.mark.parametrize("sep", SEPARATORS, ids=[repr(s)[2:-1] for s in SEPARATORS])
def test_smuggling_sequence_does_not_end_message(tern, sep):
    with tern.smtp(ehlo=True) as c:
        c.begin("alice@example.org", ["bob@tern.test"])
        c.send(b"Subject: carrier\r\n\r\nbody" + sep + SMUGGLED)
        r = c.reply()
        check(r, 5, what="data carrying %r" % sep)
        # one reply for the whole thing: the next one answers our NOOP,
        # not a smuggled MAIL, RCPT or DATA
        finish_with_good_message(tern, c)
    for raw in tern.read_messages("bob@tern.test"):
        assert b"smuggled" not in raw and b"evil@example.org" not in raw


@pytest.mark.parametrize("line", [
    b"NOOP a\x00b",
    b"MAIL FROM:<a\x00b@example.org>",
    b"\x00EHLO client.example",
], ids=["NOOP", "MAIL", "leading"])
def test_nul_in_command_line_500_5_5_2(tern, line):
    with tern.smtp(ehlo=True) as c:
        check(c.cmd(line), 500, "5.5.2", what=repr(line))
        finish_with_good_message(tern, c)


def test_oversized_data_552_5_3_4_and_nothing_stored(tern):
    body = ("x" * 70 + "\n") * 2200  # about 155 KB, limit is 100K
    with tern.smtp(ehlo=True) as c:
        c.begin("alice@example.org", ["bob@tern.test"])
        c.send(make_message("too big", body=body) + b".\r\n")
        check(c.reply(), 552, "5.3.4", what="data over max_message_size")
        finish_with_good_message(tern, c)


def test_message_under_size_limit_is_accepted_whole(tern):
    body = ("y" * 70 + "\n") * 1250  # about 89 KB, limit is 100K
    message = make_message("big but allowed", body=body)
    with tern.smtp(ehlo=True) as c:
        c.deliver(["bob@tern.test"], message)
    raw = open(tern.wait_messages("bob@tern.test", 1)[0], "rb").read()
    assert raw.endswith(message.replace(b"\r\n", b"\n"))


def test_oversized_bdat_552_5_3_4_and_session_in_sync(tern):
    chunk = b"Subject: too big\r\n\r\n" + (b"z" * 70 + b"\r\n") * 2200
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<bob@tern.test>", 250)
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        check(c.reply(), 552, "5.3.4", what="BDAT over max_message_size")
        finish_with_good_message(tern, c)


def test_disconnect_in_the_middle_of_data_stores_nothing(tern):
    with tern.smtp(ehlo=True) as c:
        c.begin("alice@example.org", ["bob@tern.test"])
        c.send(b"Subject: cut off\r\n\r\nthe first half of a mess")
    with tern.smtp(ehlo=True) as c:
        finish_with_good_message(tern, c)


def test_disconnect_in_the_middle_of_bdat_stores_nothing(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<bob@tern.test>", 250)
        c.send(b"BDAT 1000 LAST\r\nSubject: cut off\r\n\r\nonly part of the chunk")
    with tern.smtp(ehlo=True) as c:
        finish_with_good_message(tern, c)


def test_daemon_survives_disconnects_mid_message(tern):
    for i in range(20):
        c = tern.smtp(ehlo=True)
        c.begin("alice@example.org", ["bob@tern.test"])
        c.send(b"Subject: cut %d\r\n\r\n" % i + b"a" * (i * 997))
        c.close()
    assert tern.running()
    with tern.smtp(ehlo=True) as c:
        finish_with_good_message(tern, c)
