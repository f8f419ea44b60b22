"""test_metrics.py - GET /metrics: Prometheus text format that promtool
accepts, readable without a key, with counters that move as mail is sent
over SMTP and the API (connections, events by type, delivery latency,
HTTP answers by status).
"""
import shutil
import smtplib
import subprocess

import pytest

from api_helpers import api  # noqa: F401 (a fixture)
from helpers import SLOW, poll

FAMILIES = {
    "tern_connections": "gauge",
    "tern_connections_total": "counter",
    "tern_messages_total": "counter",
    "tern_events_dropped_total": "counter",
    "tern_queue_messages": "gauge",
    "tern_queue_oldest_age_seconds": "gauge",
    "tern_delivery_latency_seconds": "histogram",
    "tern_http_requests_total": "counter",
}


def scrape(api):
    r = api.request("GET", "/metrics", key=None)
    assert r.status == 200, r
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    return r.body.decode("utf-8")


def samples(text):
    """{name{labels}: value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def promtool_check(text):
    if not shutil.which("promtool"):
        pytest.fail("promtool is not installed (Debian package prometheus; scripts/deps.sh)")
    cp = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                        text=True, timeout=30)
    assert cp.returncode == 0, "promtool: %s%s\n%s" % (cp.stdout, cp.stderr, text)
    return cp


def test_metrics_pass_promtool_and_name_every_family(api):
    text = scrape(api)
    promtool_check(text)
    for name, kind in FAMILIES.items():
        assert "# TYPE %s %s\n" % (name, kind) in text, name
        assert "# HELP %s " % name in text, name
    s = samples(text)
    for event in ("accepted", "delivered", "deferred", "bounced", "rejected"):
        assert 'tern_messages_total{event="%s"}' % event in s


def test_counters_move_when_mail_is_sent(api):
    before = samples(scrape(api))
    with smtplib.SMTP("127.0.0.1", api.tern.smtp_port, timeout=10 * SLOW) as s:
        s.sendmail("someone@example.org", ["carol@tern.test"], "Subject: in\r\n\r\nHi.\r\n")
        s.sendmail("someone@example.org", ["carol@tern.test", "bob@tern.test"],
                   "Subject: in 2\r\n\r\nHi.\r\n")
    r = api.send({"from": "bob@tern.test", "to": "carol@tern.test", "text": "x"})
    assert r.status == 202
    api.tern.wait_messages("carol@tern.test", 3)
    api.tern.wait_messages("bob@tern.test", 1)

    def moved():
        after = samples(scrape(api))
        got = after['tern_messages_total{event="delivered"}'] - \
            before['tern_messages_total{event="delivered"}']
        return after if got >= 4 else None

    after = poll(moved, 10 * SLOW, 0.1, what="four deliveries counted")
    delta = {k: after[k] - before.get(k, 0) for k in after}
    assert delta['tern_messages_total{event="accepted"}'] == 4
    assert delta['tern_messages_total{event="delivered"}'] == 4
    assert delta['tern_messages_total{event="bounced"}'] == 0
    # The SMTP session and the readiness probe of the harness are both counted.
    assert delta["tern_connections_total"] >= 1
    # Each delivery is one latency observation; the buckets are cumulative.
    assert delta["tern_delivery_latency_seconds_count"] == 4
    buckets = sorted(((float(k.split('le="')[1].rstrip('"}')), v) for k, v in after.items()
                      if k.startswith("tern_delivery_latency_seconds_bucket") and "+Inf" not in k))
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)
    assert after['tern_delivery_latency_seconds_bucket{le="+Inf"}'] == \
        after["tern_delivery_latency_seconds_count"]
    assert after["tern_queue_messages"] == 0
    assert after["tern_queue_oldest_age_seconds"] == 0
    # The scrapes before and the 202 are counted by status.
    assert delta['tern_http_requests_total{code="202"}'] == 1
    assert delta['tern_http_requests_total{code="200"}'] >= 1
    promtool_check(scrape(api))


def test_refusals_and_errors_are_counted(api):
    before = samples(scrape(api))
    r = api.send({"from": "bob@tern.test", "to": "nobody@tern.test", "text": "x"})
    assert r.status == 422
    assert api.request("GET", "/v1/nothing").status == 404
    assert api.request("GET", "/v1/events", key=None).status == 401
    after = samples(scrape(api))
    for code in ("422", "404", "401"):
        key = 'tern_http_requests_total{code="%s"}' % code
        assert after[key] - before.get(key, 0) == 1, key


@pytest.mark.tern_config(relay_from="127.0.0.0/8", dns_server="127.0.0.1:9",
                         retry_intervals="1h")
def test_queue_gauges_show_waiting_mail(api):
    """Mail for a domain whose DNS does not answer waits in the queue."""
    with smtplib.SMTP("127.0.0.1", api.tern.smtp_port, timeout=10 * SLOW) as s:
        s.sendmail("someone@tern.test", ["x@far.example"], "Subject: wait\r\n\r\nHi.\r\n")
    after = poll(lambda: (lambda m: m if m["tern_queue_messages"] >= 1 else None)(
        samples(scrape(api))), 10 * SLOW, 0.1, what="a message in the queue")
    assert after["tern_queue_messages"] == 1
    poll(lambda: samples(scrape(api))["tern_queue_oldest_age_seconds"] >= 1, 10 * SLOW, 0.2,
         what="the oldest message's age to grow")


def test_metrics_need_no_key_and_allow_head(api):
    assert api.request("GET", "/metrics", key=None).status == 200
    assert api.request("HEAD", "/metrics", key=None).status == 200
    assert api.request("POST", "/metrics", key=None, raw=b"{}").status == 405
