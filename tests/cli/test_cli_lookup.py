"""`dtn receivers`, `dtn ls`, `dtn show` and `dtn events` against a live portal and real agents, with their
exit statuses: what a new user looks at before and after sending."""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import Site
from tests.harness import Agent, Person, Scratch, wait_for, write_random
from tests.tools.net import free_port

pytestmark = pytest.mark.e2e

UNKNOWN = "00000000-0000-0000-0000-000000000000"
# The API's timestamps: what a table must not show.
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


@pytest.fixture(scope="module")
def dora(portal):
    scratch = Scratch("dtn-cli-lookup-")
    made = Site(portal, scratch, who="dora")
    try:
        yield made.set_up()
    finally:
        made.close()
        scratch.remove()


def test_receivers_lists_the_grants_you_hold_with_owner_endpoint_and_online(dora):
    empty = dora.cli("receivers")
    assert empty.code == 0 and "no receiver yet" in empty.out, empty
    erin = Person(dora.portal.url, "erin-cli")
    box = erin.register("erin-receiver", role="receiver")
    erin.call("POST", "/api/v1/grants", 201, json={"grantee": dora.person.username, "receiver": box["container_id"]})

    offline = dora.cli("receivers")
    assert offline.code == 0, offline
    header, row = offline.out.splitlines()
    assert header.split() == ["RECEIVER", "ID", "NAME", "OWNER", "ENDPOINT", "STATUS", "SERVED"]
    assert row.split()[:3] == [box["container_id"], "erin-receiver", "erin-cli"] and " offline " in row

    receive_dir = dora.scratch / "erin-received"
    receive_dir.mkdir()
    dora.agents.append(Agent(dora.portal.url, box["agent_token"], None, dora.scratch / "erin-state", dora.logs,
                             DTN_RECEIVE_DIR=str(receive_dir), DTN_RECEIVER_HOST="127.0.0.1",
                             DTN_RECEIVER_PORT=str(free_port())).start())

    def served():
        listed = dora.cli("--json", "receivers").json()
        return listed[0] if listed[0]["receiver_online"] and listed[0]["served"] == "ok" else None

    grant = wait_for(served, 30, "Erin's receiver to come online and serve Dora's grant", 0.3)
    assert grant["receiver_owner"] == "erin-cli" and grant["endpoint"].startswith("https://127.0.0.1:")
    online = dora.cli("receivers")
    assert " online " in online.out and grant["endpoint"] in online.out and " yes" in online.out


def test_ls_lists_a_senders_folder_through_its_side_channel(dora):
    write_random(dora.send_dir / "big.bin", 3 * 2**20)
    write_random(dora.send_dir / "run-1" / "a.dat", 1000)
    (dora.send_dir / "run-1" / "nested").mkdir()
    dora.sender()

    top = dora.cli("ls", "dora-sender")
    assert top.code == 0, top
    lines = top.out.splitlines()
    assert [line.split()[-1] for line in lines] == ["big.bin", "run-1/"]
    assert lines[0].split()[:2] == ["3.0", "MiB"] and "just now" in lines[0]
    assert not ISO.search(top.out)

    inner = dora.cli("ls", f"{dora.container['container_id']}:run-1", "--json")
    assert inner.code == 0, inner
    assert [(e["path"], e["type"], e["size"]) for e in inner.json()["entries"]] == \
        [("run-1/a.dat", "file", 1000), ("run-1/nested", "dir", None)]
    assert dora.cli("--json", "ls", "dora-sender:run-1/nested").json()["entries"] == []
    assert "is empty" in dora.cli("ls", "dora-sender:run-1/nested").out

    refused = dora.cli("ls", "dora-sender:../etc")
    assert refused.code == 2 and refused.err.startswith("dtn: error: the sender refused: "), refused
    not_a_folder = dora.cli("ls", "dora-sender:big.bin")
    assert not_a_folder.code == 2 and "is a file, not a folder" in not_a_folder.err
    unknown = dora.cli("ls", f"{UNKNOWN}:x")
    assert unknown.code == 2, unknown
    assert unknown.err.strip() == f"dtn: error: no sender {UNKNOWN} of yours: `dtn containers` lists them"
    by_name = dora.cli("ls", "nobody")
    assert by_name.code == 2 and "no sender container of yours is named 'nobody'" in by_name.err
    # No agent runs for dora-idle: a timeout, exit 4, and a hint rather than a hang.
    silent = dora.cli("ls", "dora-idle", "--timeout", "1")
    assert silent.code == 4 and "did not answer within 1 s" in silent.err, silent


def test_show_and_events_of_a_finished_transfer_in_words_and_in_json(dora):
    write_random(dora.send_dir / "shown" / "x.bin", 50_000)
    dora.sender()
    sent = dora.cli("send", "--from", "dora-sender", *dora.s3_args(), "shown", "--label", "shown run",
                    "--watch", "--timeout", "60", "--json", **dora.s3_env())
    assert sent.code == 0, sent
    transfer = sent.json()["transfer_id"]

    shown = dora.cli("show", transfer)
    assert shown.code == 0, shown
    fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in shown.out.splitlines())
    assert fields["transfer"] == transfer and fields["state"] == "succeeded" and fields["label"] == "shown run"
    assert fields["files"].startswith("1 total, 1 sent, 0 skipped, 0 failed")
    assert fields["from"] == "dora-sender: shown" and fields["attempts"] == "1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", fields["completed"]), fields
    assert not ISO.search(shown.out)
    for args in (["--json", "show", transfer], ["show", transfer, "--json"]):
        record = dora.cli(*args).json()
        assert record["transfer_id"] == transfer and ISO.match(record["completed_at"])

    events = dora.cli("events", transfer)
    assert events.code == 0, events
    lines = events.out.splitlines()
    assert lines[0].split() == ["AT", "KIND", "SOURCE", "MESSAGE"] and len(lines) >= 3
    assert not ISO.search(events.out)
    listed = dora.cli("events", transfer, "--json").json()
    assert len(listed) == len(lines) - 1
    assert [event["kind"] for event in listed] == [line.split()[2] for line in lines[1:]]

    transfers = dora.cli("transfers")
    assert transfer in transfers.out and not ISO.search(transfers.out)
    containers = dora.cli("containers")
    assert "ago" in containers.out or "just now" in containers.out
    assert not ISO.search(containers.out)


@pytest.mark.parametrize("command", ["show", "events", "watch", "stop", "restart", "manifest"])
def test_an_unknown_transfer_is_a_plain_sentence(dora, command):
    result = dora.cli(command, UNKNOWN)
    assert result.code == 2, result
    assert result.err.strip() == f"dtn: error: no transfer {UNKNOWN} of yours: `dtn transfers` lists them"
    as_json = dora.cli("--json", command, UNKNOWN)
    assert as_json.code == 2 and as_json.json()["status"] == 404
    assert "matches the given query" not in as_json.out + as_json.err
