"""A receiver's settings: where grants land, how senders reach it, the one port it serves on."""

import pytest

from agent import config
from agent.config import ConfigError
from tests.agent.test_config import env  # noqa: F401  (the base environment fixture)


@pytest.fixture
def receiving(env, tmp_path):  # noqa: F811
    (tmp_path / "received").mkdir()
    return {**env, "DTN_RECEIVE_DIR": str(tmp_path / "received")}


def test_a_receiver_on_loopback_listens_there_with_tls_on_the_default_port(receiving, tmp_path):
    receiver = config.load(receiving).receiver
    assert receiver.receive_dir == (tmp_path / "received").resolve()
    assert (receiver.host, receiver.bind, receiver.tls, receiver.port) == ("127.0.0.1", "127.0.0.1", True, 9443)


def test_the_old_port_range_is_refused_naming_the_one_port_that_replaced_it(receiving):
    with pytest.raises(ConfigError, match="DTN_RECEIVER_PORTS is gone") as refused:
        config.load({**receiving, "DTN_RECEIVER_PORTS": "9443-9462"})
    assert "DTN_RECEIVER_PORT " in str(refused.value)


def test_a_site_name_listens_on_every_address_unless_told(receiving):
    named = config.load({**receiving, "DTN_RECEIVER_HOST": "dtn.lab.example.org"}).receiver
    assert (named.host, named.bind) == ("dtn.lab.example.org", "0.0.0.0")
    bound = config.load({**receiving, "DTN_RECEIVER_HOST": "dtn.lab.example.org",
                         "DTN_RECEIVER_BIND": "10.1.2.3"}).receiver
    assert bound.bind == "10.1.2.3"


def test_a_receiver_needs_no_send_folder(receiving):
    del receiving["DTN_SEND_DIR"]
    loaded = config.load(receiving)
    assert loaded.send_dir is None and loaded.receiver is not None


def test_an_agent_with_neither_folder_is_refused(env):  # noqa: F811
    del env["DTN_SEND_DIR"]
    with pytest.raises(ConfigError, match="DTN_SEND_DIR is required"):
        config.load(env)


@pytest.mark.parametrize("name,value,words", [
    ("DTN_RECEIVER_PORT", "9443-9462", "whole number"),
    ("DTN_RECEIVER_PORT", "100", "between 1024 and 65535"),
    ("DTN_RECEIVER_TLS", "yes", "'true' or 'false'"),
    ("DTN_RECEIVER_HOST", "bad host/name", "host name or an IP"),
])
def test_malformed_receiver_settings_are_refused_naming_the_variable(receiving, name, value, words):
    with pytest.raises(ConfigError, match=name) as refused:
        config.load({**receiving, name: value})
    assert words in str(refused.value)


def test_receiver_settings_without_a_receive_folder_are_refused(env):  # noqa: F811
    with pytest.raises(ConfigError, match="DTN_RECEIVER_PORT is for a receiver"):
        config.load({**env, "DTN_RECEIVER_PORT": "9443"})
