"""test_api_suppressions.py - GET, POST and DELETE /v1/suppressions against the
real ternd: each user's own list, an admin's view of every list, strict
validation of the JSON body and the path, and that a listed address is
refused as a recipient (422 suppressed_recipient) until it is removed.
"""
import pytest

from api_helpers import api  # noqa: F401 (a fixture)

BOB, CAROL = "bob@tern.test", "carol@tern.test"


def listing(api, key="default", query=""):
    r = api.request("GET", "/v1/suppressions" + query, key=key)
    assert r.status == 200, r
    assert set(r.json) == {"suppressions"}, r
    return r.json["suppressions"]


def add(api, body, key="default"):
    return api.request("POST", "/v1/suppressions", body, key=key)


def assert_error(r, status, code):
    assert r.status == status, r
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    assert r.error_code == code, r
    assert r.json["error"]["message"], r


def test_add_list_and_delete(api):
    assert listing(api) == []
    r = add(api, {"address": "Someone@Example.NET", "reason": "asked to stop"})
    assert r.status == 201, r
    assert r.json["address"] == "someone@example.net"
    assert r.json["reason"] == "asked to stop" and r.json["user"] == BOB
    assert r.json["created"].endswith("Z")
    entry, = listing(api)
    assert entry == r.json
    # Adding again replaces the entry (a new reason), it does not double it.
    assert add(api, {"address": "someone@example.net", "reason": "again"}).status == 201
    assert [e["reason"] for e in listing(api)] == ["again"]
    # A message to it is refused, as SMTP would refuse the RCPT.
    r = api.send({"from": BOB, "to": ["SOMEONE@example.net"], "text": "x"})
    assert_error(r, 422, "suppressed_recipient")
    r = api.request("DELETE", "/v1/suppressions/someone%40example.net")
    assert r.status == 204 and r.body == b"", r
    assert listing(api) == []
    assert api.send({"from": BOB, "to": ["someone@example.net"], "text": "x"}).status == 202
    assert_error(api.request("DELETE", "/v1/suppressions/someone@example.net"), 404, "not_found")


def test_reason_is_optional(api):
    r = add(api, {"address": "quiet@example.net"})
    assert r.status == 201, r
    assert r.json["reason"]


def test_lists_are_per_user_and_admins_see_all(api):
    carol = api.create_key(CAROL)
    assert add(api, {"address": "a@example.net", "reason": "bob's"}).status == 201
    assert add(api, {"address": "b@example.net", "reason": "carol's"}, key=carol).status == 201
    assert [e["address"] for e in listing(api)] == ["a@example.net"]
    assert [e["address"] for e in listing(api, key=carol)] == ["b@example.net"]
    everyone = listing(api, key=api.admin_key)
    assert {(e["user"], e["address"]) for e in everyone} == {(BOB, "a@example.net"),
                                                              (CAROL, "b@example.net")}
    assert [e["address"] for e in listing(api, api.admin_key, "?user=" + CAROL)] == \
        ["b@example.net"]
    # bob's list does not stop carol.
    assert api.send({"from": CAROL, "to": "a@example.net", "text": "x"}, key=carol).status == 202
    # A user's key cannot read or change another user's list...
    assert_error(api.request("GET", "/v1/suppressions?user=" + CAROL), 403, "forbidden")
    assert_error(add(api, {"address": "c@example.net", "user": CAROL}), 403, "forbidden")
    assert_error(api.request("DELETE", "/v1/suppressions/b@example.net?user=" + CAROL), 403,
                 "forbidden")
    assert_error(api.request("DELETE", "/v1/suppressions/b@example.net"), 404, "not_found")
    # ...an admin key names the list it changes.
    r = add(api, {"address": "c@example.net", "user": CAROL}, key=api.admin_key)
    assert r.status == 201 and r.json["user"] == CAROL, r
    assert_error(add(api, {"address": "d@example.net"}, key=api.admin_key), 400,
                 "invalid_request")
    assert_error(add(api, {"address": "d@example.net", "user": "nobody@tern.test"},
                     key=api.admin_key), 422, "unknown_user")
    assert_error(api.request("DELETE", "/v1/suppressions/c@example.net", key=api.admin_key),
                 400, "invalid_request")
    r = api.request("DELETE", "/v1/suppressions/c@example.net?user=" + CAROL, key=api.admin_key)
    assert r.status == 204, r
    assert [e["address"] for e in listing(api, key=carol)] == ["b@example.net"]


def test_changes_survive_a_restart(api):
    assert add(api, {"address": "kept@example.net", "reason": "complaint"}).status == 201
    assert add(api, {"address": "gone@example.net"}).status == 201
    assert api.request("DELETE", "/v1/suppressions/gone@example.net").status == 204
    assert api.tern.stop() == 0
    api.tern.start()
    assert [e["address"] for e in listing(api)] == ["kept@example.net"]


@pytest.mark.parametrize("raw, code", [
    (b"", "invalid_json"),
    (b"{", "invalid_json"),
    (b"[]", "invalid_json"),
    (b'"a@example.net"', "invalid_json"),
    (b'{"address": "a@example.net"} x', "invalid_json"),
    (b'{"address": "a@example.net", "address": "b@example.net"}', "invalid_json"),
    (b'{"address": "a@example.net", "\\u0000": 1}', "invalid_json"),
    (b'{"address": "a@example.net", "reasons": "typo"}', "invalid_request"),
    (b'{"reason": "no address"}', "invalid_request"),
    (b'{"address": null}', "invalid_request"),
    (b'{"address": 42}', "invalid_request"),
    (b'{"address": ["a@example.net"]}', "invalid_request"),
    (b'{"address": "a@example.net", "reason": 1}', "invalid_request"),
    (b'{"address": "a@example.net", "reason": "two\\nlines"}', "invalid_request"),
    (b'{"address": "a@example.net", "reason": "' + b"x" * 600 + b'"}', "invalid_request"),
    (b'{"address": ""}', "invalid_address"),
    (b'{"address": "no-at-sign"}', "invalid_address"),
    (b'{"address": "local@"}', "invalid_address"),
    (b'{"address": "a@example.net\\r\\nRCPT TO:<x@y>"}', "invalid_address"),
    (b'{"address": "Name <a@example.net>"}', "invalid_address"),
    (b'{"address": "a b@example.net"}', "invalid_address"),
])
def test_bad_bodies_are_400(api, raw, code):
    r = api.request("POST", "/v1/suppressions", raw=raw)
    assert_error(r, 400, code)
    assert listing(api) == []


def test_wrong_content_type_is_415(api):
    r = api.request("POST", "/v1/suppressions", raw=b'{"address": "a@example.net"}',
                    headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("path", ["/v1/suppressions/not-an-address",
                                  "/v1/suppressions/a%00b@example.net",
                                  "/v1/suppressions/a@example.net?foo=1"])
def test_bad_deletes_are_400(api, path):
    r = api.request("DELETE", path)
    assert r.status == 400, r
    assert r.error_code in ("invalid_address", "invalid_request"), r


def test_suppressions_need_a_key_and_allow_only_their_methods(api):
    assert_error(api.request("GET", "/v1/suppressions", key=None), 401, "unauthorized")
    r = api.request("PUT", "/v1/suppressions", raw=b"{}")
    assert_error(r, 405, "method_not_allowed")
    assert set(r.headers["Allow"].split(", ")) == {"GET", "POST"}
    assert_error(api.request("GET", "/v1/suppressions/a@example.net"), 405, "method_not_allowed")
