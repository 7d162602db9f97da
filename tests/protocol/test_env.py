"""The strict reader (dtn_protocol.env), tested with a fake environ and a tmp state
directory. The portal's settings and the agent's config, which read through it, have
their own tests (tests/portal/test_env.py, tests/agent/test_config.py)."""

from __future__ import annotations

import stat
import threading

import pytest

from dtn_protocol.env import ConfigError, Env, env_bool, env_int, env_list, env_secret, env_str


# --- env_bool ---------------------------------------------------------------------------------


def test_a_bool_reads_true_and_false():
    assert env_bool("DTN_FLAG", False, environ={"DTN_FLAG": "true"}) is True
    assert env_bool("DTN_FLAG", True, environ={"DTN_FLAG": "false"}) is False


def test_a_bool_falls_back_to_its_default_when_unset_or_empty():
    assert env_bool("DTN_FLAG", True, environ={}) is True
    assert env_bool("DTN_FLAG", False, environ={"DTN_FLAG": ""}) is False


@pytest.mark.parametrize("value", ["True", "FALSE", "1", "0", "yes", "no", "on", " true", "true "])
def test_a_bool_refuses_anything_but_true_or_false(value):
    with pytest.raises(ConfigError) as excinfo:
        env_bool("DTN_FLAG", False, environ={"DTN_FLAG": value})
    assert "DTN_FLAG" in str(excinfo.value)
    assert repr(value) in str(excinfo.value)


# --- env_int, env_list, env_str ---------------------------------------------------------------


def test_an_int_reads_a_whole_number():
    assert env_int("DTN_N", 3, environ={"DTN_N": "42"}) == 42
    assert env_int("DTN_N", 3, environ={}) == 3


@pytest.mark.parametrize("value", ["1.5", "ten", "0x10", "5s"])
def test_an_int_refuses_what_is_not_a_whole_number(value):
    with pytest.raises(ConfigError, match="DTN_N must be a whole number"):
        env_int("DTN_N", 3, environ={"DTN_N": value})


def test_an_int_refuses_a_value_below_its_minimum():
    with pytest.raises(ConfigError, match="DTN_N must be at least 5, not 4"):
        env_int("DTN_N", 10, environ={"DTN_N": "4"}, minimum=5)
    assert env_int("DTN_N", 10, environ={"DTN_N": "5"}, minimum=5) == 5


def test_a_list_is_split_on_commas_and_trimmed():
    assert env_list("DTN_L", ["x"], environ={"DTN_L": " a.org, b.org,,c.org "}) == ["a.org", "b.org", "c.org"]
    assert env_list("DTN_L", ["x"], environ={}) == ["x"]


def test_a_default_list_is_a_copy_not_the_callers_object():
    default = ["x"]
    env_list("DTN_L", default, environ={}).append("y")
    assert default == ["x"]


def test_an_empty_string_counts_as_unset():
    assert env_str("DTN_S", "fallback", environ={"DTN_S": ""}) == "fallback"
    assert env_str("DTN_S", "fallback", environ={"DTN_S": "value"}) == "value"


# --- env_secret -------------------------------------------------------------------------------


def test_a_secret_is_read_from_the_environment_first(tmp_path):
    value = env_secret("DTN_SECRET_KEY", tmp_path, environ={"DTN_SECRET_KEY": "from-env"})
    assert value == "from-env"
    assert not (tmp_path / "secrets").exists()


def test_a_secret_is_read_from_the_file_named_by_name_file(tmp_path):
    secret_file = tmp_path / "docker-secret"
    secret_file.write_text("from-file\n")
    value = env_secret("DTN_SECRET_KEY", tmp_path, environ={"DTN_SECRET_KEY_FILE": str(secret_file)})
    assert value == "from-file"
    assert not (tmp_path / "secrets").exists()


def test_a_missing_name_file_stops_the_start(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="DTN_SECRET_KEY_FILE=.*cannot be read"):
        env_secret("DTN_SECRET_KEY", tmp_path, environ={"DTN_SECRET_KEY_FILE": str(missing)})


def test_an_empty_name_file_stops_the_start(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        env_secret("DTN_SECRET_KEY", tmp_path, environ={"DTN_SECRET_KEY_FILE": str(empty)})


def test_without_a_secret_one_is_generated_into_a_0600_file_under_the_state_dir(tmp_path):
    value = env_secret("DTN_SECRET_KEY", tmp_path, environ={})
    path = tmp_path / "secrets" / "dtn_secret_key"
    assert path.read_text().strip() == value
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(value) >= 50
    # Nothing half-written is left beside it.
    assert [p.name for p in path.parent.iterdir()] == ["dtn_secret_key"]


def test_a_generated_secret_is_kept_across_starts(tmp_path):
    first = env_secret("DTN_SECRET_KEY", tmp_path, environ={})
    second = env_secret("DTN_SECRET_KEY", tmp_path, environ={})
    assert first == second


def test_each_secret_and_each_state_dir_gets_its_own_value(tmp_path):
    key = env_secret("DTN_SECRET_KEY", tmp_path / "one", environ={})
    hmac_key = env_secret("DTN_TOKEN_HMAC_KEY", tmp_path / "one", environ={})
    other_install = env_secret("DTN_SECRET_KEY", tmp_path / "two", environ={})
    assert len({key, hmac_key, other_install}) == 3


def test_concurrent_generation_agrees_on_one_value(tmp_path):
    racers = 8
    # Every racer has passed the "no file yet" check before any of them writes.
    barrier = threading.Barrier(racers)
    candidates = iter(f"candidate-{n}" for n in range(racers))
    lock = threading.Lock()

    def generate():
        with lock:
            mine = next(candidates)
        barrier.wait(timeout=10)
        return mine

    results = [None] * racers

    def run(index):
        results[index] = env_secret("DTN_SECRET_KEY", tmp_path, generate=generate, environ={})

    threads = [threading.Thread(target=run, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert len(set(results)) == 1
    assert results[0].startswith("candidate-")
    path = tmp_path / "secrets" / "dtn_secret_key"
    assert path.read_text().strip() == results[0]
    assert [p.name for p in path.parent.iterdir()] == ["dtn_secret_key"]


def test_an_empty_generated_secret_file_stops_the_start(tmp_path):
    """An empty key file (a crash, a careless edit) must not become an empty HMAC key."""
    path = tmp_path / "secrets" / "dtn_token_hmac_key"
    path.parent.mkdir(parents=True)
    path.write_text("\n")
    with pytest.raises(ConfigError, match="dtn_token_hmac_key is empty"):
        env_secret("DTN_TOKEN_HMAC_KEY", tmp_path, environ={})
    assert path.read_text() == "\n"


def test_a_failed_generation_leaves_no_file_behind(tmp_path):
    def broken():
        raise OSError("no entropy today")

    with pytest.raises(OSError):
        env_secret("DTN_SECRET_KEY", tmp_path, generate=broken, environ={})
    assert list((tmp_path / "secrets").iterdir()) == []


# --- What the portal and the agent read alike ---------------------------------------------------


def test_a_secret_given_both_ways_stops_the_start(tmp_path):
    secret_file = tmp_path / "docker-secret"
    secret_file.write_text("from-file\n")
    with pytest.raises(ConfigError, match="set DTN_SECRET_KEY or DTN_SECRET_KEY_FILE, not both"):
        env_secret("DTN_SECRET_KEY", tmp_path, environ={"DTN_SECRET_KEY": "from-env",
                                                        "DTN_SECRET_KEY_FILE": str(secret_file)})


def test_a_secret_comes_from_the_secrets_file_when_the_environment_has_none():
    env = Env({}, secrets_file={"DTN_AGENT_TOKEN": "from-the-file"})
    assert env.secret("DTN_AGENT_TOKEN", required=True) == "from-the-file"
    assert env.given("DTN_AGENT_TOKEN") and not env.given("DTN_RCLONE_RC_PASS")


def test_a_required_secret_missing_everywhere_names_every_place_it_may_be():
    with pytest.raises(ConfigError, match=r"DTN_AGENT_TOKEN is required \(in the environment, in "
                                          r"DTN_AGENT_TOKEN_FILE, or in the secrets file\)"):
        Env({}).secret("DTN_AGENT_TOKEN", required=True)
    assert Env({}).secret("DTN_RCLONE_RC_PASS") is None


def test_bounded_numbers_say_their_range():
    env = Env({"DTN_N": "300", "DTN_F": "0.05", "DTN_BAD": "fast"})
    with pytest.raises(ConfigError, match="DTN_N must be between 1 and 256, not 300"):
        env.integer("DTN_N", 4, 1, 256)
    with pytest.raises(ConfigError, match="DTN_F must be between 0.2 and 2, not 0.05"):
        env.number("DTN_F", 1.0, 0.2, 2.0)
    with pytest.raises(ConfigError, match="DTN_BAD must be a number, not 'fast'"):
        env.number("DTN_BAD", 1.0, 0.2, 2.0)
    assert env.number("DTN_UNSET", 1.5, 0.2, 2.0) == 1.5 and env.integer("DTN_N", 4, 1, 300) == 300
