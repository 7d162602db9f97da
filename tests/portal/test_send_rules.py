"""One set of rules for what may be sent (portal/transfers/validation.py): the
send page and the API refuse the same inputs with the same words, and the
rules themselves hold at their edges."""

from __future__ import annotations

import html

import pytest
from django.core.exceptions import ValidationError

from portal.transfers import validation
from tests.portal.sending import checked_in, grant

BAD_INPUTS = [
    ("sources", "/etc/passwd"),
    ("sources", "a/../../b"),
    ("sources", "tab\there"),
    ("prefix", "/abs"),
    ("prefix", "x/../y"),
    ("bandwidth_limit", "fast"),
    ("label", "bell\x07"),
    ("s3_host", "https://s3.example.org/"),
    ("s3_bucket", "UPPER"),
    ("s3_port", "0"),
    ("s3_access_key", "with space"),
]


@pytest.mark.parametrize("field,value", BAD_INPUTS)
def test_the_page_and_the_api_refuse_alike(browser, alice, alice_api, alice_sender, field, value):
    fields = {"sender": str(alice_sender.pk), "sources": "ok.txt", "s3_host": "s3.example.org", "s3_port": "9000",
              "s3_bucket": "bucket", "s3_access_key": "AK", "s3_secret_key": "SK", "overwrite": "update_changed",
              field: value}
    api_body = {**fields, "sources": [fields["sources"]], "s3_port": int(fields["s3_port"])}
    api = alice_api.post("/api/v1/transfers", api_body, format="json")
    assert api.status_code == 400
    assert api.json()["field"] == field
    api_message = api.json()["error"].split(": ", 1)[1]

    client = browser(alice)
    page = client.post("/portal/send/", {"csrfmiddlewaretoken": client.csrf(), **fields})
    assert page.status_code == 400
    shown = page.content.decode().split(f'id="id_{field}-error"', 1)[1].split("</div>", 1)[0]
    assert api_message in html.unescape(shown)


@pytest.mark.parametrize("raw,clean", [
    ("a", "a"), ("./a", "a"), ("a//b/", "a/b"), ("a/./b", "a/b"), (".", "."), ("./", "."),
    ("dir with spaces/ünïcode", "dir with spaces/ünïcode"), ("..hidden", "..hidden"), ("a..b/c", "a..b/c"),
    ("back\\slash", "back\\slash"),
])
def test_a_relative_path_is_normalised(raw, clean):
    assert validation.relative_path(raw) == clean


@pytest.mark.parametrize("raw", ["/a", "\\a", "C:/x", "c:\\x", "..", "a/..", "../a", "a/../b", "a\x00", "a\x1f",
                                 "a\x7f", "a\x85", "a\u2028b", ""])
def test_a_path_that_leaves_the_send_folder_or_hides_characters_is_refused(raw):
    with pytest.raises(ValidationError):
        validation.relative_path(raw)


def test_an_error_quotes_a_path_with_its_control_characters_escaped():
    with pytest.raises(ValidationError) as excinfo:
        validation.relative_path("evil\x1b[2Jname")
    assert "evil\\x1b[2Jname" in excinfo.value.messages[0]
    assert "\x1b" not in excinfo.value.messages[0]


def test_sources_from_a_text_box_drop_blank_lines_and_duplicates():
    assert validation.source_paths("a\r\n\r\n b\n./a\n") == ["a", " b"]


def test_too_many_sources_are_refused():
    with pytest.raises(ValidationError):
        validation.source_paths([f"f{i}" for i in range(validation.MAX_SOURCES + 1)])


@pytest.mark.parametrize("raw,clean", [("", ""), ("0", ""), ("off", ""), ("50M", "50M"), ("50m", "50M"),
                                       ("1.5g", "1.5G"), ("800K", "800K"), ("1024", "1024"), ("0.0M", "")])
def test_a_bandwidth_limit_is_rclones_simple_form(raw, clean):
    assert validation.bandwidth_limit(raw) == clean


def test_a_prefix_may_be_empty_and_is_normalised():
    assert validation.destination_prefix("") == ""
    assert validation.destination_prefix("/") == ""
    assert validation.destination_prefix("from-alice//run-17/") == "from-alice/run-17"


def test_a_prefix_longer_than_s3_allows_is_refused():
    with pytest.raises(ValidationError):
        validation.destination_prefix("é" * 400)  # 800 bytes


@pytest.mark.parametrize("name", ["abc", "a-b.c", "alice-3f2a9c0d", "a" * 63])
def test_valid_bucket_names(name):
    assert validation.bucket_name(name) == name


@pytest.mark.parametrize("name", ["ab", "a" * 64, "-abc", "abc-", "a..b", "a.-b", "a_b", "ABC", "10.0.0.1"])
def test_invalid_bucket_names(name):
    with pytest.raises(ValidationError):
        validation.bucket_name(name)


def test_the_overwrite_policy_defaults_to_update_changed():
    assert validation.overwrite(None) == validation.overwrite("") == "update_changed"


def test_the_api_and_the_page_default_to_verifying_and_updating(alice_api, alice, bob_receiver, alice_sender):
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    body = alice_api.post("/api/v1/transfers", {"sender": str(alice_sender.pk), "receiver": str(bob_receiver.pk),
                                                "sources": ["a"]}, format="json").json()
    assert body["options"] == {"verify_checksums": True, "overwrite": "update_changed", "bandwidth_limit": "",
                               "network_check": "enforce", "tuning": {}}
    from portal.transfers.forms import SendForm

    form = SendForm(alice)
    assert (form["verify_checksums"].initial, form["overwrite"].initial) == (True, "update_changed")
