"""The rule a receiver's address must pass, in the portal and in the sender (dtn_protocol.endpoints)."""

import pytest

from dtn_protocol.endpoints import EndpointRefused, Rule, check_receiver, is_local_address, split

STRICT = Rule(own_hosts=frozenset({"portal.example.org", "203.0.113.7"}))


@pytest.mark.parametrize("url, pinned, words", [
    ("http://rx.example.org:9000", True, "pinned certificate"),
    ("http://rx.example.org:9000", False, "plain http:// receivers are off"),
    ("https://127.0.0.1:9443", True, "loopback or link-local"),
    ("https://127.8.9.10:9443", True, "loopback or link-local"),
    ("https://[::1]:9443", True, "loopback or link-local"),
    ("https://[::ffff:127.0.0.1]:9443", True, "loopback or link-local"),
    ("https://169.254.169.254:443", True, "loopback or link-local"),
    ("https://[fe80::1]:9443", True, "loopback or link-local"),
    ("https://0.0.0.0:9443", True, "loopback or link-local"),
    ("https://localhost:9443", True, "loopback or link-local"),
    ("https://bob.localhost:9443", True, "loopback or link-local"),
    ("https://portal.example.org:9443", True, "the portal's own address"),
    ("https://PORTAL.example.org.:9443", True, "the portal's own address"),
    ("https://rx.example.org", True, "names no port"),
    ("https://rx.example.org:9443/bucket", True, "nothing more"),
    ("https://user:pw@rx.example.org:9443", True, "nothing more"),
    ("ftp://rx.example.org:21", True, "is not an address like"),
    ("https://rx_example:9443", True, "is not a host name"),
    ("https://rx.example.org:99999", True, "is not an address like"),
])
def test_an_address_the_rule_refuses_is_refused_with_a_sentence(url, pinned, words):
    with pytest.raises(EndpointRefused) as refused:
        check_receiver(url, STRICT, pinned=pinned)
    assert words in str(refused.value)


def test_a_name_is_judged_by_every_address_it_resolves_to():
    with pytest.raises(EndpointRefused, match="loopback"):
        check_receiver("https://rx.example.org:9443", STRICT, pinned=True, addresses={"198.51.100.4", "127.0.0.1"})
    with pytest.raises(EndpointRefused, match="portal's own"):
        check_receiver("https://rx.example.org:9443", STRICT, pinned=True, addresses={"203.0.113.7"})
    assert check_receiver("https://rx.example.org:9443", STRICT, pinned=True,
                          addresses={"198.51.100.4"}) == "https://rx.example.org:9443"


@pytest.mark.parametrize("url", ["https://10.1.2.3:9443", "https://172.17.0.1:9443", "https://192.168.0.9:9443",
                                 "https://rx.lab.example.org:9443", "https://[2001:db8::5]:9443", "https://rx:9443"])
def test_private_networks_and_plain_names_pass(url):
    assert check_receiver(url, STRICT, pinned=True) == url


def test_the_settings_open_what_they_name_and_nothing_else():
    local = Rule(allow_local=True)
    assert check_receiver("https://127.0.0.1:9443", local, pinned=True) == "https://127.0.0.1:9443"
    with pytest.raises(EndpointRefused, match="plain"):
        check_receiver("http://127.0.0.1:9443", local, pinned=False)
    plain = Rule(allow_plain=True)
    assert check_receiver("http://rx.example.org:9000", plain, pinned=False) == "http://rx.example.org:9000"
    # A pinned certificate means https, whatever the settings.
    with pytest.raises(EndpointRefused, match="pinned"):
        check_receiver("http://rx.example.org:9000", Rule(allow_plain=True, allow_local=True), pinned=True)


def test_an_address_is_written_one_way():
    assert check_receiver("HTTPS://RX.Example.ORG.:9443", STRICT, pinned=True) == "https://rx.example.org:9443"
    assert split("https://[2001:db8::5]:9443") == ("https", "2001:db8::5", 9443)
    assert is_local_address("fe80::1%eth0") and not is_local_address("rx.example.org")
