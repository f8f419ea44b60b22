"""api.py - sending over the HTTP API against sending over SMTP submission.

Does a message cost more when an application POSTs it to /v1/messages than
when it submits it over SMTP?  The same ternd (services.Tern) takes N
messages of 1 KB from one user, app@api.bench.test, for the bench's remote
recipient, and relays them through the MX to its smtp-sink, once per path:

  api   POST /v1/messages with the user's API key, C connections kept alive
        (http.client, HTTP/1.1), one request after the other on each;
  smtp  submission with STARTTLS and AUTH PLAIN (smtplib), C connections,
        each reused for all its messages (MAIL, RCPT, DATA per message).

Each of the C clients is a process of its own (a Python client is slower
than ternd; threads would queue on one interpreter lock), connected,
through TLS and authenticated before the clock starts; the clock stops at
the last 202 or 250 (acceptance) and again when smtp-sink has counted all N
(end-to-end).  ternd's CPU time (all threads, /proc) is taken over the same
span, until end-to-end.  ROUNDS rounds alternate which path goes first; the
report gives medians and the ratio API/SMTP.

bench.py runs this as the part "api" (BENCH_ONLY=api runs it alone):
BENCH_API_N messages per round (2000; quick: 100), BENCH_API_C connections
(20; quick: 4), BENCH_API_ROUNDS (5; quick: 2).
"""
import email.utils
import http.client
import json
import multiprocessing
import smtplib
import ssl
import threading
import time

import measure
from services import RECIPIENT, TERN_IP, BenchError

API_DOMAIN = "api.bench.test"
API_USER = "app@" + API_DOMAIN
API_PASSWORD = "bench-only-password"  # an account of the run's own ternd
PATHS = ("api", "smtp")
SETUP_TIMEOUT = 120  # connect, TLS and AUTH of every client
CLIENT_TIMEOUT = 120  # one reply

# 1024 octets of text: 14 lines of 70 characters and a shorter last one.
BODY = ("abcdefghij" * 7 + "\n") * 14 + "x" * 29 + "\n"
assert len(BODY) == 1024


def subject(worker, i):
    return "bench %d.%d" % (worker, i)


class ApiClient:
    """One kept-alive HTTP/1.1 connection to POST /v1/messages."""

    def __init__(self, port, key):
        self.port, self.key = port, key
        self.conn = None
        self.reconnects = 0

    def open(self):
        self.conn = http.client.HTTPConnection(TERN_IP, self.port, timeout=CLIENT_TIMEOUT)
        self.conn.connect()

    def send(self, worker, i):
        body = json.dumps({"from": API_USER, "to": [RECIPIENT],
                           "subject": subject(worker, i), "text": BODY}).encode()
        self.conn.request("POST", "/v1/messages", body, {
            "Authorization": "Bearer " + self.key, "Content-Type": "application/json"})
        r = self.conn.getresponse()
        answer = r.read()
        if r.status != 202:
            raise BenchError("POST /v1/messages: %d %s" % (r.status, answer[:200]))
        if r.will_close:
            # http.client opens a new connection for the next request:
            # counted, since the comparison is about kept-alive connections.
            self.reconnects += 1

    def close(self):
        if self.conn is not None:
            self.conn.close()


class SmtpClient:
    """One submission session: STARTTLS, AUTH, then every message on it."""

    def __init__(self, port):
        self.port = port
        self.smtp = None
        self.reconnects = 0

    def open(self):
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE  # ternd's own self-signed pair
        self.smtp = smtplib.SMTP(TERN_IP, self.port, local_hostname="client.bench.test",
                                 timeout=CLIENT_TIMEOUT)
        self.smtp.ehlo()
        self.smtp.starttls(context=tls)
        self.smtp.ehlo()
        self.smtp.login(API_USER, API_PASSWORD)

    def send(self, worker, i):
        msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s" % (
                   API_USER, RECIPIENT, subject(worker, i), email.utils.formatdate(),
                   email.utils.make_msgid(domain=API_DOMAIN), BODY.replace("\n", "\r\n")))
        # Raises on any refusal; the one recipient is accepted when it returns.
        self.smtp.sendmail(API_USER, [RECIPIENT], msg.encode("ascii"))

    def close(self):
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()


def client_worker(path, port, key, worker, count, barrier, results):
    """One client process: set up, wait for the start, send COUNT messages;
    puts (worker, finish time or None, messages accepted, reconnects,
    error) on RESULTS."""
    client = ApiClient(port, key) if path == "api" else SmtpClient(port)
    try:
        client.open()
    except Exception as e:  # any failure: report it, release the others
        barrier.abort()
        results.put((worker, None, 0, 0, "set-up: %s" % e))
        client.close()
        return
    try:
        barrier.wait(SETUP_TIMEOUT)
    except threading.BrokenBarrierError:
        results.put((worker, None, 0, 0, "another client failed to set up"))
        client.close()
        return
    sent, error = 0, ""
    for i in range(count):
        try:
            client.send(worker, i)
        except Exception as e:
            error = str(e)[:300]
            break
        sent += 1
    results.put((worker, time.monotonic(), sent, client.reconnects, error))
    client.close()


def one_round(path, st, svc, rnd, key):
    """N messages over PATH with C clients; a measure.Run."""
    tern, sink = svc["tern"], svc["tern_sink"]
    n, conc = st.api_n, st.api_conc
    run = measure.Run(path, (conc, len(BODY), True), rnd, n)
    port = tern.http_port if path == "api" else tern.submission_port
    mp = multiprocessing.get_context("fork")
    barrier = mp.Barrier(conc + 1)
    results = mp.Queue()
    shares = [n // conc + (1 if w < n % conc else 0) for w in range(conc)]
    procs = [mp.Process(target=client_worker,
                        args=(path, port, key, w, shares[w], barrier, results), daemon=True)
             for w in range(conc)]
    cpu = measure.TernCpu(tern.pid)
    base = sink.count()
    for p in procs:
        p.start()
    try:
        try:
            barrier.wait(SETUP_TIMEOUT)
        except threading.BrokenBarrierError:
            pass  # a client failed: its result says why
        c0, t0 = cpu.sample(), time.monotonic()
        done = [results.get(timeout=st.api_timeout) for _ in procs]
    except Exception as e:  # queue.Empty: a client hung
        run.note = "clients did not finish: %s" % (e or type(e).__name__)
        return run
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    errors = sorted(set(d[4] for d in done if d[4]))
    sent = sum(d[2] for d in done)
    reconnects = sum(d[3] for d in done)
    if errors or sent != n:
        run.note = "%d of %d accepted; %s" % (sent, n, "; ".join(errors)[:300])
        return run
    run.accept_s = max(d[1] for d in done) - t0
    run.e2e_s, got = measure.wait_sink(sink, base + n, t0, st.stall_s, st.api_timeout)
    run.cpu_s = cpu.sample() - c0
    if run.e2e_s is None:
        run.note = "sink got %d of %d" % (got - base, n)
    if reconnects:
        run.note = (run.note + "; " if run.note else "") + \
            "%d reconnection(s) (server closed)" % reconnects
    return run


def setup_user(tern):
    """The domain, the user and its API key; the key."""
    tern.ctl("domain", "add", API_DOMAIN)
    tern.ctl("user", "add", API_USER, stdin=API_PASSWORD + "\n")
    key = tern.ctl("apikey", "create", API_USER).strip()
    if not key.startswith("tern_"):
        raise BenchError("apikey create printed %r" % key[:60])
    return key


def run_api(st, svc, ctx):
    """ROUNDS rounds of both paths; appends to ctx["api"]."""
    key = setup_user(svc["tern"])
    sinks = [svc["tern_sink"], svc["postfix_sink"]]
    for rnd in range(st.api_rounds):
        order = PATHS if rnd % 2 == 0 else PATHS[::-1]
        for path in order:
            measure.settle(sinks, svc["postfix"])
            print("api: round %d/%d, %s, %d messages over %d connections" % (
                rnd + 1, st.api_rounds, path, st.api_n, st.api_conc), flush=True)
            run = one_round(path, st, svc, rnd, key)
            ctx["api"].append(run)
            print("    %-4s accept %s msg/s, end-to-end %s msg/s, ternd CPU %s ms/msg %s" % (
                path, _rate(run, run.accept_s), _rate(run, run.e2e_s),
                _ms(run), run.note), flush=True)


def _rate(run, seconds):
    v = run.rate(seconds)
    return "n/a" if v is None else "%.0f" % v


def _ms(run):
    return "n/a" if run.cpu_s is None else "%.3f" % (run.cpu_s / run.n * 1000)
