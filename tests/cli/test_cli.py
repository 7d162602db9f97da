"""`dtn` against a live portal, through the installed entry point: sign-in, lists, sending to an
S3 endpoint entered by hand and watching it land, stop and restart, the manifest, and every
exit status a script relies on."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys

import pytest

from tests.cli.conftest import CLI, DTN, PASSWORD
from tests.harness import Agent, Person, sha256, wait_for, write_random
from tests.tools.net import free_port

pytestmark = pytest.mark.e2e


def test_login_stores_the_token_in_one_0600_file_and_never_prints_it(site, tmp_path):
    path = site.cli.config_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["portal"] == site.portal.url and stored["token"]
    # A fresh login, with --json: the token shows nowhere.
    cli = CLI(tmp_path / "cfg")
    result = cli("login", "--portal", site.portal.url, "--username", site.person.username, "--json",
                 DTN_PASSWORD=PASSWORD)
    assert result.code == 0, result
    token = json.loads((tmp_path / "cfg" / "credentials.json").read_text())["token"]
    assert token not in result.out + result.err
    assert result.json() == {"portal": site.portal.url, "username": site.person.username,
                             "credentials": str(tmp_path / "cfg" / "credentials.json")}
    assert stat.S_IMODE((tmp_path / "cfg" / "credentials.json").stat().st_mode) == 0o600
    # A wrong password is an authentication error, and writes nothing.
    other = CLI(tmp_path / "other")
    result = other("login", "--portal", site.portal.url, "--username", site.person.username,
                   DTN_PASSWORD="wrong")
    assert result.code == 3, result
    assert "wrong username or password" in result.err
    assert not (tmp_path / "other" / "credentials.json").exists()
    # No password and no terminal: a usage error, not a hang.
    assert other("login", "--portal", site.portal.url, "--username", "x").code == 2


def test_containers_lists_them_as_a_table_and_as_json(site):
    table = site.cli("containers")
    assert table.code == 0, table
    assert "CONTAINER ID" in table.out
    for container in (site.container, site.idle):
        assert container["container_id"] in table.out and container["name"] in table.out
    listed = site.cli("containers", "--json")
    assert listed.code == 0, listed
    assert {c["container_id"] for c in listed.json()} == {site.container["container_id"],
                                                          site.idle["container_id"]}


def test_send_to_a_hand_entered_endpoint_watch_it_land_and_read_its_manifest(site):
    write_random(site.send_dir / "one.bin", 3 * 2**20)
    for index in range(5):
        write_random(site.send_dir / "dir" / f"f{index}.dat", 1000 + index)
    site.sender()
    sent = site.cli("send", "--from", "carol-sender", *site.s3_args(), "one.bin", "dir", "--prefix", "cli",
                    "--label", "cli run", "--json", **site.s3_env())
    assert sent.code == 0, sent
    record = sent.json()
    transfer = record["transfer_id"]
    assert record["label"] == "cli run" and record["source"]["paths"] == ["one.bin", "dir"]
    assert site.s3.secret_key not in sent.out

    watched = site.cli("watch", transfer, "--timeout", "60", "--every", "0")
    assert watched.code == 0, watched
    lines = watched.out.splitlines()
    assert lines[-1].startswith(f"transfer {transfer} succeeded: 6 files")
    assert any("files 6/6" in line and "succeeded" in line for line in lines), watched.out
    assert "\r" not in watched.out  # not a terminal: plain lines
    landed = site.recv_dir / site.bucket / "cli"
    for path in ("one.bin", *(f"dir/f{i}.dat" for i in range(5))):
        assert sha256(landed / path) == sha256(site.send_dir / path)

    code, drawn = site.cli.on_a_terminal("watch", transfer)
    assert code == 0, drawn
    assert "\r[####################] 100%" in drawn and "files 6/6" in drawn, drawn

    final = site.cli("watch", transfer, "--json")
    assert final.code == 0 and final.json()["state"] == "succeeded"

    manifest = site.cli("manifest", transfer)
    assert manifest.code == 0, manifest
    rows = {row["path"]: row for row in manifest.json()["manifest"]}
    assert set(rows) == {"one.bin", *(f"dir/f{i}.dat" for i in range(5))}
    # An S3 endpoint entered by hand has no receiver agent to hash what landed: rclone's checks apply.
    assert rows["one.bin"]["sha256"] == sha256(site.send_dir / "one.bin")
    out_file = site.scratch / "manifest.csv"
    written = site.cli("manifest", transfer, "--csv", "-o", str(out_file), "--json")
    assert written.code == 0, written
    assert written.json()["output"] == str(out_file)
    table = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert {row["path"] for row in table} == set(rows) and {row["outcome"] for row in table} == {"sent"}
    assert site.cli("manifest", transfer, "--csv").out.splitlines()[0] == \
        "path,size,sha256,receiver_sha256,outcome,error"

    listed = site.cli("transfers", "--json", "--state", "succeeded")
    assert transfer in {t["transfer_id"] for t in listed.json()}
    assert transfer in site.cli("transfers").out


MANY = 300_000  # ~52 MB of CSV, ~70 MB of JSON


def peak_rss_mib(argv: list[str], env: dict, stdout) -> tuple[int, float]:
    """Run `argv` alone in a fresh Python parent, so the peak of its children is this command's."""
    program = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]);"
               " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", program, *argv], env=env, stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=300)
    return done.returncode, int(done.stderr.strip().splitlines()[-1]) / 1024


def test_a_manifest_of_300000_files_streams_through_the_cli_in_bounded_memory(site):
    """`dtn manifest` writes what the portal streams as it comes: a million files' manifest (~160 MiB) never
    sits in its memory. Before, it read the whole answer (and parsed the JSON) first: ~100 / ~400 MB here."""
    write_random(site.send_dir / "many" / "first.bin", 1000)
    site.sender()
    sent = site.cli("send", "--from", "carol-sender", *site.s3_args(), "many", "--prefix", "many", "--json",
                    **site.s3_env())
    assert sent.code == 0, sent
    transfer = sent.json()["transfer_id"]
    assert site.cli("watch", transfer, "--timeout", "60", "--every", "0").code == 0
    site.portal.manage("shell", "-c", f"""
from portal.transfers.models import Transfer
from tests.portal.test_million_files import fill
fill(Transfer.objects.get(pk="{transfer}"), {MANY})
""")
    env = {**site.cli.env}
    out = site.scratch / "many.csv"
    code, peak = peak_rss_mib([str(DTN), "manifest", transfer, "--csv", "-o", str(out)], env, subprocess.DEVNULL)
    assert code == 0
    with out.open(newline="") as handle:
        assert sum(1 for _ in csv.reader(handle)) == MANY + 2  # the header and the first file
    assert out.stat().st_size > 40e6 and peak < 60, f"{out.stat().st_size} bytes written with a peak of {peak:.0f} MiB"
    assert not list(site.scratch.path.glob(".many.csv.partial"))
    print(f"\ndtn manifest --csv -o: {out.stat().st_size / 1e6:.1f} MB written, peak RSS {peak:.1f} MiB")

    document = site.scratch / "many.json"
    with document.open("wb") as handle:
        code, peak = peak_rss_mib([str(DTN), "manifest", transfer], env, handle)
    assert code == 0
    assert document.stat().st_size > 50e6 and peak < 60, f"{document.stat().st_size} bytes, peak {peak:.0f} MiB"
    assert len(json.loads(document.read_bytes())["manifest"]) == MANY + 1
    print(f"dtn manifest > file: {document.stat().st_size / 1e6:.1f} MB of JSON, peak RSS {peak:.1f} MiB")


def test_send_to_a_granted_receiver_by_container_id_lands_verified_by_both_agents(site):
    bob = Person(site.portal.url, "bob-cli")
    bob_box = bob.register("bob-receiver", role="receiver")
    grant = bob.call("POST", "/api/v1/grants", 201,
                     json={"grantee": site.person.username, "receiver": bob_box["container_id"]})
    receive_dir = site.scratch / "bob-received"
    receive_dir.mkdir()
    first_port = free_port()
    site.agents.append(Agent(site.portal.url, bob_box["agent_token"], None, site.scratch / "bob-state",
                             site.logs, DTN_RECEIVE_DIR=str(receive_dir), DTN_RECEIVER_HOST="127.0.0.1",
                             DTN_RECEIVER_PORT=str(first_port)).start())
    site.sender()
    expected = {}
    for index in range(4):
        path = write_random(site.send_dir / "granted" / f"part {index} ü.bin", 200_000 + index)
        expected[f"granted/part {index} ü.bin"] = sha256(path)

    def served():
        box = bob.call("GET", f"/api/v1/containers/{bob_box['container_id']}")
        given = {g["grant_id"]: g for g in bob.call("GET", "/api/v1/grants")["given"]}
        return box["online"] and box["endpoint"].startswith("https://") and given[grant["grant_id"]]["endpoint"]

    wait_for(served, 30, "Bob's receiver to come online and serve the grant", 0.2)
    result = site.cli("send", "--from", "carol-sender", "--to", bob_box["container_id"], "granted",
                      "--prefix", "from-carol", "--watch", "--timeout", "60", "--json")
    assert result.code == 0, result
    record = result.json()
    assert record["state"] == "succeeded" and record["files"]["verified"] == len(expected)
    assert record["destination"]["container_id"] == bob_box["container_id"]
    landed = receive_dir / grant["bucket"] / "from-carol"
    assert {path: sha256(landed / path) for path in expected} == expected
    manifest = site.cli("manifest", record["transfer_id"], "--json")
    rows = {row["path"]: row for row in manifest.json()["manifest"]}
    assert {path: (row["sha256"], row["receiver_sha256"]) for path, row in rows.items()} == \
        {path: (digest, digest) for path, digest in expected.items()}


def test_watch_times_out_on_a_transfer_no_agent_picks_up_then_stop_and_restart(site):
    (site.send_dir / "small.txt").write_text("hello\n")
    sent = site.cli("send", "--from", site.idle["container_id"], *site.s3_args(), "small.txt", "--prefix", "idle",
                    **site.s3_env())
    assert sent.code == 0, sent
    transfer = sent.out.split("transfer ", 1)[1].split()[0]

    timed_out = site.cli("watch", transfer, "--timeout", "2", "--json", timeout=30)
    assert timed_out.code == 4, timed_out
    assert timed_out.json()["state"] == "queued" and timed_out.json()["timed_out"] is True
    assert "timed out" in site.cli("watch", transfer, "--timeout", "1").err

    stopped = site.cli("stop", transfer, "--json")
    assert stopped.code == 0, stopped
    assert stopped.json()["state"] == "canceled"
    canceled = site.cli("watch", transfer)
    assert canceled.code == 1, canceled
    assert f"transfer {transfer} canceled" in canceled.out
    again = site.cli("stop", transfer)  # a finished transfer cannot be stopped: the portal says why
    assert again.code == 2 and again.err.startswith("dtn: error: ")

    site.agent(site.idle)
    restarted = site.cli("restart", transfer, "--watch", "--timeout", "60", "--json")
    assert restarted.code == 0, restarted
    assert restarted.json()["state"] == "succeeded" and restarted.json()["attempts"] == 2
    assert (site.recv_dir / site.bucket / "idle" / "small.txt").read_text() == "hello\n"


def test_a_failed_transfer_exits_1_with_its_reason(site):
    site.sender()
    result = site.cli("send", "--from", "carol-sender", *site.s3_args(), "not-there.txt", "--watch",
                      "--timeout", "60", **site.s3_env())
    assert result.code == 1, result
    assert "failed: source_missing" in result.out.splitlines()[-1]


def test_bad_token_unreachable_portal_and_refused_requests(site, tmp_path):
    cli = CLI(tmp_path)
    bad = cli("containers", DTN_PORTAL=site.portal.url, DTN_TOKEN="dtn_not_a_real_token")
    assert bad.code == 3, bad
    assert "dtn login" in bad.err
    bad_json = cli("transfers", "--json", DTN_PORTAL=site.portal.url, DTN_TOKEN="nope")
    assert bad_json.code == 3 and bad_json.json()["status"] == 401

    down = cli("containers", "--json", DTN_PORTAL=f"http://127.0.0.1:{free_port()}", DTN_TOKEN="x")
    assert down.code == 5, down
    assert down.json()["exit_status"] == 5 and "cannot reach the portal" in down.err
    watch_down = cli("watch", "00000000-0000-0000-0000-000000000000", "--timeout", "5",
                     DTN_PORTAL=f"http://127.0.0.1:{free_port()}", DTN_TOKEN="x")
    assert watch_down.code == 5, watch_down

    missing = site.cli("watch", "00000000-0000-0000-0000-000000000000")
    assert missing.code == 2 and "dtn: error:" in missing.err
    refused = site.cli("send", "--from", site.container["container_id"], *site.s3_args(), "../escape",
                       "--json", **site.s3_env())
    assert refused.code == 2, refused
    body = refused.json()
    assert body["status"] == 400 and body["field"] == "sources" and body["error"]
    no_secret = site.cli("send", "--from", "carol-sender", *site.s3_args(), "x")
    assert no_secret.code == 2 and "DTN_S3_SECRET_KEY" in no_secret.err
    unknown = site.cli("send", "--from", "nobody", *site.s3_args(), "x", **site.s3_env())
    assert unknown.code == 2 and "--from" in unknown.err
    env = {k: v for k, v in os.environ.items() if k.startswith("DTN_")}
    assert "DTN_TOKEN" not in env  # the tests never lean on the caller's sign-in
