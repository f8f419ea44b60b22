"""test_protocol.py - the SMTP server as a client sees it: commands, replies,
extensions, limits, timeouts, pipelining, BDAT, SMTPUTF8, DSN.

RFC 5321 (commands, reply codes, 4.5.3 limits), RFC 3463 (enhanced codes),
RFC 1870 (SIZE), RFC 2920 (PIPELINING), RFC 3030 (CHUNKING/BDAT), RFC 6531
(SMTPUTF8), RFC 3461 (DSN).  Codes and enhanced codes are the contract
(DESIGN.md, SMTP replies); reply text is free.
"""
import time

import pytest

from helpers import (HOSTNAME, QUEUED_RE, SLOW, check, data_block, make_message, poll,
                     to_lf)


def test_greeting_names_host_and_esmtp(tern):
    with tern.smtp(greet=False) as c:
        r = check(c.reply(), 220)
        assert r.texts[0].startswith("%s ESMTP" % HOSTNAME), r


def test_ehlo_lists_extensions(tern):
    with tern.smtp() as c:
        r = c.ehlo()
        assert r.texts[0].split()[0] == HOSTNAME, r
        keywords = {}
        for line in r.texts[1:]:
            word, _, arg = line.partition(" ")
            keywords[word.upper()] = arg
        for kw in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                   "CHUNKING", "DSN"):
            assert kw in keywords, "EHLO lacks %s:\n%s" % (kw, r)
        assert keywords["SIZE"] == str(100 * 1024), "SIZE must announce max_message_size: %s" % r


def test_helo_is_accepted(tern):
    with tern.smtp() as c:
        c.expect("HELO client.example", 250)
        c.expect("MAIL FROM:<alice@example.org>", 250, "2.1.0")


def test_transaction_replies(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250, "2.1.0")
        c.expect("RCPT TO:<bob@tern.test>", 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(data_block(make_message("replies")))
        r = check(c.reply(), 250, "2.0.0", what="end of data")
        assert QUEUED_RE.search(r.text), r
        c.expect("RSET", 250, "2.0.0")
        c.expect("NOOP", 250, "2.0.0")
        c.expect("QUIT", 221, "2.0.0")
        assert c.wait_closed(5), "QUIT must close the connection"
    tern.wait_messages("bob@tern.test", 1)


def test_null_sender_is_accepted(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<>", 250, "2.1.0")
        c.expect("RCPT TO:<bob@tern.test>", 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(data_block(make_message("a bounce", sender="MAILER-DAEMON@example.org")))
        check(c.reply(), 250, "2.0.0")
    raw = open(tern.wait_messages("bob@tern.test", 1)[0], "rb").read()
    assert raw.startswith(b"Return-Path: <>\n"), raw[:200]


def test_rset_clears_transaction(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<bob@tern.test>", 250)
        c.expect("RSET", 250, "2.0.0")
        c.expect("DATA", 503, "5.5.1")
        c.expect("MAIL FROM:<alice@example.org>", 250, "2.1.0")


def test_vrfy_does_not_disclose_users(tern):
    with tern.smtp(ehlo=True) as c:
        known = c.expect("VRFY bob@tern.test", 252)
        unknown = c.expect("VRFY nosuch@tern.test", 252)
    assert known.enhanced == unknown.enhanced
    assert known.text.replace("bob", "X") == unknown.text.replace("nosuch", "X"), \
        "VRFY answers differ for a user and a non-user:\n%s\n%s" % (known, unknown)


def test_expn_does_not_disclose_alias_targets(tern):
    tern.add_alias("team@tern.test", "bob@tern.test")
    with tern.smtp(ehlo=True) as c:
        r = c.cmd("EXPN team@tern.test")
    assert r.code != 250 and "bob" not in r.text, r


def test_help_is_answered_214(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("HELP", 214)
        c.expect("NOOP", 250)


def test_unknown_command_500_5_5_1(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("FROBNICATE now", 500, "5.5.1")
        c.expect("NOOP", 250, "2.0.0")


@pytest.mark.parametrize("steps", [
    ["MAIL FROM:<alice@example.org>"],
    ["EHLO client.example", "RCPT TO:<bob@tern.test>"],
    ["EHLO client.example", "MAIL FROM:<alice@example.org>", "DATA"],
    ["EHLO client.example", "MAIL FROM:<alice@example.org>", "MAIL FROM:<alice@example.org>"],
], ids=["MAIL before EHLO", "RCPT before MAIL", "DATA before RCPT", "MAIL twice"])
def test_command_out_of_sequence_503_5_5_1(tern, steps):
    with tern.smtp() as c:
        for line in steps[:-1]:
            c.expect(line, 250)
        c.expect(steps[-1], 503, "5.5.1")
        c.expect("NOOP", 250)


@pytest.mark.parametrize("line", [
    "EHLO",
    "MAIL FROM:<alice@example.org",
    "MAIL FROMX:<alice@example.org>",
    "MAIL FROM:<alice@example.org> NOSUCHPARAM=1",
    "RCPT TO:<bob@tern.test",
])
def test_bad_syntax_501(tern, line):
    with tern.smtp(ehlo=True) as c:
        if line.startswith("RCPT"):
            c.expect("MAIL FROM:<alice@example.org>", 250)
        r = c.cmd(line)
        # RFC 5321 4.1.1.11 and RFC 1869: unknown parameters may get 555
        assert r.code in ((501, 555) if "NOSUCHPARAM" in line else (501,)), r
        c.expect("NOOP", 250)


@pytest.mark.parametrize("length", [600, 20000])
def test_long_command_line_500_5_5_2_and_session_continues(tern, length):
    with tern.smtp(ehlo=True) as c:
        c.send("NOOP " + "x" * length + "\r\n")
        check(c.reply(), 500, "5.5.2", what="over-long line")
        # exactly one reply for the long line: the next one answers NOOP
        c.expect("NOOP", 250, "2.0.0")
        c.expect("MAIL FROM:<alice@example.org>", 250, "2.1.0")


@pytest.mark.tern_config(max_errors=3)
def test_too_many_errors_421_and_close(tern):
    with tern.smtp(ehlo=True) as c:
        got = []
        for i in range(4):
            r = c.cmd("BOGUS%d" % i)
            got.append(r)
            if r.code == 421:
                break
            # the 421 may follow the last error's own reply unasked; do not
            # write into a connection the server is closing
            if c.pending(0.3):
                got.append(c.reply())
                break
        assert got[-1].code == 421, "no 421 after %d errors: %s" % (len(got), got)
        assert len(got) >= 3, "421 before max_errors was reached: %s" % got
        for r in got[:-1]:
            check(r, 500, "5.5.1")
        assert c.wait_closed(5), "connection left open after 421"


@pytest.mark.tern_config(timeout_command="2s")
def test_idle_client_gets_421_4_4_2_and_close(tern):
    with tern.smtp(ehlo=True) as c:
        start = time.monotonic()
        r = c.reply(timeout=15 * SLOW)
        waited = time.monotonic() - start
        check(r, 421, "4.4.2", what="idle timeout")
        assert waited >= 1.5, "timed out after %.1fs, timeout_command is 2s" % waited
        assert c.wait_closed(5)


@pytest.mark.tern_config(timeout_greeting_wait="2s")
def test_silent_client_after_greeting_gets_421_and_close(tern):
    with tern.smtp() as c:
        check(c.reply(timeout=15 * SLOW), 421, what="greeting wait timeout")
        assert c.wait_closed(5)


@pytest.mark.tern_config(timeout_data="2s")
def test_stalled_data_gets_421_and_nothing_is_stored(tern):
    with tern.smtp(ehlo=True) as c:
        c.begin("alice@example.org", ["bob@tern.test"])
        c.send(b"Subject: stalled\r\n\r\nhalf a mess")
        check(c.reply(timeout=15 * SLOW), 421, what="data timeout")
        assert c.wait_closed(5)
    with tern.smtp(ehlo=True) as c:
        c.deliver(["bob@tern.test"], make_message("after the stall"))
    tern.wait_messages("bob@tern.test", 1)
    subjects = [b"after the stall" in m for m in tern.read_messages("bob@tern.test")]
    assert subjects == [True], "the stalled message was stored"


@pytest.mark.tern_config(max_connections_per_ip=3)
def test_connections_beyond_per_ip_limit_get_421_4_7_0(tern):
    held = [tern.smtp() for _ in range(3)]
    try:
        with tern.smtp(greet=False) as extra:
            check(extra.reply(), 421, "4.7.0", what="connection over the per-IP limit")
            assert extra.wait_closed(5)
        held.pop().close()

        def admitted():
            c = tern.smtp(greet=False)
            r = c.reply()
            if r.code == 220:
                return c
            c.close()
            return None

        c = poll(admitted, 10, 0.1, what="a slot freed by a closed connection")
        c.expect("NOOP", 250)
        c.close()
    finally:
        for c in held:
            c.close()


@pytest.mark.tern_config(max_connection_rate=5)
def test_reconnecting_faster_than_the_rate_limit_gets_421_4_7_0(tern):
    # The fixture's own readiness check may have used one of the five.
    replies = []
    for _ in range(7):
        with tern.smtp(greet=False) as c:
            replies.append(c.reply())
    assert replies[0].code == 220
    refused = [r for r in replies if r.code == 421]
    assert refused, "7 connections in a row, limit 5 a minute: none refused"
    check(refused[0], 421, "4.7.0", what="connection over max_connection_rate")


@pytest.mark.tern_config(max_connections=2, max_connections_per_ip=50)
def test_connections_beyond_global_limit_get_421(tern):
    held = [tern.smtp() for _ in range(2)]
    try:
        with tern.smtp(greet=False) as extra:
            check(extra.reply(), 421, what="connection over max_connections")
            assert extra.wait_closed(5)
    finally:
        for c in held:
            c.close()


def test_pipelined_commands_get_replies_in_order(tern):
    message = make_message("pipelined")
    with tern.smtp() as c:
        c.send("EHLO client.example\r\nMAIL FROM:<alice@example.org>\r\n"
               "RCPT TO:<bob@tern.test>\r\nRCPT TO:<nosuch@tern.test>\r\nDATA\r\n")
        check(c.reply(), 250, what="EHLO")
        check(c.reply(), 250, "2.1.0", what="MAIL")
        check(c.reply(), 250, "2.1.5", what="RCPT bob")
        check(c.reply(), 550, "5.1.1", what="RCPT nosuch")
        check(c.reply(), 354, what="DATA")
        c.send(data_block(message) + b"NOOP\r\nQUIT\r\n")
        check(c.reply(), 250, "2.0.0", what="end of data")
        check(c.reply(), 250, what="NOOP")
        check(c.reply(), 221, what="QUIT")
    raw = open(tern.wait_messages("bob@tern.test", 1)[0], "rb").read()
    assert raw.endswith(to_lf(message))


def bdat_delivery(tern, chunks, pipelined=False):
    """Send CHUNKS with BDAT (the last one with LAST); the replies."""
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<bob@tern.test>", 250)
        replies = []
        for i, chunk in enumerate(chunks):
            last = " LAST" if i == len(chunks) - 1 else ""
            c.send(b"BDAT %d%s\r\n" % (len(chunk), last.encode()) + chunk)
            if not pipelined:
                replies.append(c.reply())
        if pipelined:
            replies = [c.reply() for _ in chunks]
        c.expect("NOOP", 250)
    return replies


def test_bdat_chunks_are_concatenated(tern):
    message = make_message("chunked", body="first line\nsecond line\n.dot line kept\nlast\n")
    chunks = [message[:40], message[40:77], message[77:]]
    replies = bdat_delivery(tern, chunks)
    for r in replies[:-1]:
        check(r, 250, what="BDAT chunk")
    check(replies[-1], 250, "2.0.0", what="BDAT LAST")
    assert QUEUED_RE.search(replies[-1].text), replies[-1]
    raw = open(tern.wait_messages("bob@tern.test", 1)[0], "rb").read()
    assert raw.endswith(to_lf(message)), raw
    assert b"\n.dot line kept\n" in raw, "BDAT data is not dot-stuffed"


def test_bdat_crlf_split_across_chunks_is_one_line_end(tern):
    message = make_message("split", body="alpha\nbeta\n")
    cut = message.index(b"alpha\r\n") + len(b"alpha\r")
    replies = bdat_delivery(tern, [message[:cut], message[cut:]])
    check(replies[-1], 250, "2.0.0", what="BDAT LAST")
    raw = open(tern.wait_messages("bob@tern.test", 1)[0], "rb").read()
    assert raw.endswith(to_lf(message)), raw


def test_bdat_pipelined_with_empty_last_chunk(tern):
    message = make_message("pipelined chunks", body="one\ntwo\n")
    replies = bdat_delivery(tern, [message[:50], message[50:], b""], pipelined=True)
    for r in replies:
        check(r, 250)
    assert QUEUED_RE.search(replies[-1].text), replies[-1]
    raw = open(tern.wait_messages("bob@tern.test", 1)[0], "rb").read()
    assert raw.endswith(to_lf(message)), raw


def test_smtputf8_address_accepted_only_with_smtputf8(tern):
    tern.add_user("jörg@tern.test")
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<jörg@tern.test>", 553, "5.6.7")
        c.expect("RSET", 250)
        check(c.cmd("MAIL FROM:<jürgen@example.org>"), 5, what="UTF-8 sender without SMTPUTF8")
        c.expect("MAIL FROM:<jürgen@example.org> SMTPUTF8", 250, "2.1.0")
        c.expect("RCPT TO:<jörg@tern.test>", 250, "2.1.5")
        c.expect("DATA", 354)
        message = make_message("Grüße", sender="jürgen@example.org", to="jörg@tern.test",
                               body="Schöne Grüße\n")
        c.send(data_block(message))
        check(c.reply(), 250, "2.0.0")
    raw = open(tern.wait_messages("jörg@tern.test", 1)[0], "rb").read()
    assert raw.startswith("Return-Path: <jürgen@example.org>\n".encode()), raw[:200]
    assert raw.endswith(to_lf(message))


def test_dsn_parameters_are_accepted(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org> RET=HDRS ENVID=abc", 250, "2.1.0")
        c.expect("RCPT TO:<bob@tern.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@tern.test",
                 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(data_block(make_message("with DSN")))
        check(c.reply(), 250, "2.0.0")
    tern.wait_messages("bob@tern.test", 1)


def test_mail_size_over_limit_552_5_3_4(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org> SIZE=%d" % (100 * 1024 + 1), 552, "5.3.4")
        c.expect("MAIL FROM:<alice@example.org> SIZE=1000", 250, "2.1.0")


@pytest.mark.tern_config(max_recipients=3)
def test_recipients_beyond_limit_get_452_4_5_3(tern):
    message = make_message("three of four")
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        for tag in ("a", "b", "c"):
            c.expect("RCPT TO:<bob+%s@tern.test>" % tag, 250, "2.1.5")
        c.expect("RCPT TO:<bob+d@tern.test>", 452, "4.5.3")
        c.expect("DATA", 354)
        c.send(data_block(message))
        check(c.reply(), 250, "2.0.0", what="the accepted recipients stay accepted")
    tern.wait_messages("bob@tern.test", 1)


def test_unknown_local_user_550_5_1_1(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<nosuch@tern.test>", 550, "5.1.1")
        c.expect("RCPT TO:<bob@tern.test>", 250, "2.1.5")


def test_relay_to_foreign_domain_is_refused_554_5_7_1(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<carol@example.net>", 554, "5.7.1")
        c.expect("RCPT TO:<bob@tern.test>", 250, "2.1.5")


@pytest.mark.tern_config(relay_from="127.0.0.0/8")
def test_relay_from_network_may_send_to_foreign_domain(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<carol@example.net>", 250, "2.1.5")
        c.expect("RSET", 250)


@pytest.mark.tern_config(relay_from="192.0.2.0/24")
def test_relay_from_other_network_does_not_open_relay(tern):
    with tern.smtp(ehlo=True) as c:
        c.expect("MAIL FROM:<alice@example.org>", 250)
        c.expect("RCPT TO:<carol@example.net>", 554, "5.7.1")
