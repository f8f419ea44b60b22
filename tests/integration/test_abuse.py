"""Connection-level abuse: one client address must not starve the others.

A slowloris holds as many connections as it may and trickles bytes to keep
them alive; the per-address limit caps it, and a client from another
address is served as if nothing were happening."""
import threading

import pytest

from helpers import SLOW, SMTPConn, check, make_message


@pytest.mark.tern_config(max_connections_per_ip=8, timeout_command="30s")
def test_slowloris_cannot_starve_another_client(tern):
    stop = threading.Event()
    slow = []
    for _ in range(8):
        c = SMTPConn(tern.smtp_port, timeout=10 * SLOW)
        c.greet()
        c.send("EHLO sl")  # an unfinished line, a byte at a time below
        slow.append(c)

    def trickle():
        while not stop.is_set():
            for c in slow:
                try:
                    c.send("o")
                except OSError:
                    pass
            stop.wait(0.2)

    t = threading.Thread(target=trickle)
    t.start()
    try:
        # The attacker's next connection is refused...
        with SMTPConn(tern.smtp_port, timeout=10 * SLOW) as extra:
            check(extra.reply(), 421, "4.7.0", what="slowloris connection over the limit")
        # ...while a client from another address gets a full transaction
        # (each reply within the client's timeout).
        with SMTPConn(tern.smtp_port, timeout=10 * SLOW, source="127.0.0.2") as c:
            c.greet()
            c.ehlo()
            c.deliver(["bob@tern.test"], make_message("served during slowloris"))
        tern.wait_messages("bob@tern.test")
    finally:
        stop.set()
        t.join()
        for c in slow:
            c.close()


@pytest.mark.tern_config(timeout_command="2s")
def test_trickled_line_still_times_out_when_it_stops(tern):
    with tern.smtp(ehlo=True) as c:
        c.send("NOO")
        assert c.wait_closed(10 * SLOW), "an idle half-line kept the session open"
        assert b"421 4.4.2" in c.buf
