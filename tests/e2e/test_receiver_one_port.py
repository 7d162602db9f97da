"""One receiver port for every grant, through the real portal and real agent processes.

- 300 grants on one receiver agent: one `rclone serve s3`, one port; each of the 300 keys sees and writes
  its own folder only (its neighbour's refuses it to list, read and write; one key tries every other
  folder); a 301st grant is served too; the receiver's memory printed (docs/performance.md).
- A grant revoked while another grant's 1 GiB transfer is in flight: the revoked key reaches nothing
  within seconds, and the other transfer completes with zero bytes sent twice, measured at the
  receiver (what its S3 server wrote), not by the product's counters.
- A sender handed a receiver address the rule refuses (a forged record) connects nowhere: a listener
  started on that address accepts nothing."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import pytest
import urllib3
from minio.error import InvalidResponseError, S3Error

from tests.e2e.test_user_story import grant_keys, minio_client
from tests.harness import Agent, Person, Scratch, sha256, wait_for, write_random
from tests.tools.net import free_port

pytestmark = pytest.mark.e2e
GiB = 2**30


def served(person: Person, count: int | None = None) -> list[dict]:
    rows = [row for row in person.call("GET", "/api/v1/grants")["given"] if row["active"]]
    ok = [row for row in rows if row["served"] == "ok"]
    return ok if count is None or len(ok) >= count else []


def serve_s3_processes(agent: Agent) -> list[int]:
    """The agent's children that are `rclone serve s3`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == agent.pid and b"serve" in cmdline and b"s3" in cmdline:
            found.append(int(entry.name))
    return found


def status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {name} for {pid}")


def written(pid: int) -> int:
    """Bytes the process wrote (`wchar`): an upload landing once is written once."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar")


def listening_ports(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def cannot_list_or_read(client, bucket: str, key: str) -> bool:
    for attempt in (lambda: list(client.list_objects(bucket, recursive=True)),
                    lambda: client.get_object(bucket, key).read(), lambda: client.stat_object(bucket, key)):
        try:
            attempt()
        except (S3Error, InvalidResponseError, urllib3.exceptions.HTTPError):
            continue
        return False
    return True


def refused(client, bucket: str, key: str) -> bool:
    try:
        client.put_object(bucket, key, io.BytesIO(b"no"), 2)
    except (S3Error, InvalidResponseError, urllib3.exceptions.HTTPError):
        return True
    return False


@pytest.fixture
def receiver(portal):
    scratch = Scratch("dtn-one-port-")
    agents = []

    def start(person: Person, **env) -> tuple[dict, Agent, Path]:
        box = person.register(f"receiver-{len(agents)}", role="receiver")
        folder = scratch / f"received-{len(agents)}"
        folder.mkdir()
        agent = Agent(portal.url, box["agent_token"], None, scratch / f"rx-state-{len(agents)}", scratch.path,
                      DTN_RECEIVE_DIR=str(folder), DTN_RECEIVER_HOST="127.0.0.1",
                      DTN_RECEIVER_PORT=str(free_port()), **env).start()
        agents.append(agent)
        return box, agent, folder

    try:
        yield start, scratch, agents
    finally:
        for agent in agents:
            agent.stop()
        scratch.remove()


def test_three_hundred_grants_and_a_three_hundred_and_first_on_one_server_and_one_port(portal, receiver):
    start, scratch, agents = receiver
    bob = Person(portal.url, "bob-300")
    box, agent, folder = start(bob)
    # 300 people holding a grant on Bob's receiver, made in the portal's database at once.
    portal.manage("shell", "-c", f"""
from portal.accounts.models import User
from portal.containers.models import Container
from portal.grants.models import Grant
receiver = Container.objects.get(pk="{box['container_id']}")
people = User.objects.bulk_create([User(username=f"grantee-{{i:03d}}", email=f"g{{i}}@example.org",
                                        password="!") for i in range(300)])
for person in people:
    Grant.issue(receiver, person)
""")
    rows = wait_for(lambda: served(bob, 300), 90, "300 grants served", 1)
    assert len(rows) == 300
    [server] = serve_s3_processes(agent)
    port = int(box_endpoint(bob, box)[0].rsplit(":", 1)[1])
    assert listening_ports(server) == {port}
    assert {row["endpoint"] for row in rows} == {f"https://127.0.0.1:{port}"}

    # Every key as its sender holds it: its own folder is the only bucket it sees, and it writes there; its
    # neighbour's folder refuses it to list, read and write. One key also tries every other folder.
    certificate = (scratch / "rx-state-0" / "tls" / "s3.crt").read_text()
    for row, neighbour in zip(rows, rows[1:] + rows[:1]):
        client = minio_client(row["endpoint"], *grant_keys(portal.url, box["agent_token"], row["grant_id"]),
                              certificate, scratch)
        assert [bucket.name for bucket in client.list_buckets()] == [row["bucket"]]
        client.put_object(row["bucket"], "hello.txt", io.BytesIO(b"hi"), 2)
        assert cannot_list_or_read(client, neighbour["bucket"], "hello.txt")
        assert refused(client, neighbour["bucket"], "hello.txt")
        if row is rows[0]:
            assert all(cannot_list_or_read(client, other["bucket"], "hello.txt") for other in rows[1:])
    # Nothing a refused key sent landed anywhere: each folder holds its own key's file only.
    for row in rows:
        assert [p.name for p in (folder / row["bucket"]).iterdir()] == ["hello.txt"]
        assert (folder / row["bucket"] / "hello.txt").read_bytes() == b"hi"

    # The 301st, through the API: served, and nothing restarted.
    late = Person(portal.url, "grantee-late")
    grant = bob.call("POST", "/api/v1/grants", 201, json={"grantee": late.username, "receiver": box["container_id"]})
    wait_for(lambda: any(r["grant_id"] == grant["grant_id"] for r in served(bob)), 30, "the 301st grant served", 0.5)
    assert serve_s3_processes(agent) == [server] and agent.process.poll() is None
    agent_kib, server_kib = status_kib(agent.pid, "VmHWM"), status_kib(server, "VmHWM")
    print(f"\n301 grants: receiver agent peak RSS {agent_kib / 1024:.1f} MiB,"
          f" its serve s3 {server_kib / 1024:.1f} MiB, one process on one port")


def box_endpoint(person: Person, box: dict) -> tuple[str]:
    return (person.call("GET", f"/api/v1/containers/{box['container_id']}")["endpoint"],)


def test_a_grant_revoked_mid_transfer_reaches_nothing_while_another_grants_gigabyte_lands_once(portal, receiver):
    start, scratch, agents = receiver
    bob, alice, carol = (Person(portal.url, name) for name in ("bob-revoke", "alice-revoke", "carol-revoke"))
    box, bob_agent, folder = start(bob)
    alice_grant = bob.call("POST", "/api/v1/grants", 201, json={"grantee": alice.username,
                                                                "receiver": box["container_id"]})
    carol_grant = bob.call("POST", "/api/v1/grants", 201, json={"grantee": carol.username,
                                                                "receiver": box["container_id"]})
    wait_for(lambda: served(bob, 2), 30, "both grants served", 0.5)
    endpoint = box_endpoint(bob, box)[0]
    certificate = (scratch / "rx-state-0" / "tls" / "s3.crt").read_text()
    alice_s3 = minio_client(endpoint, *grant_keys(portal.url, box["agent_token"], alice_grant["grant_id"]),
                            certificate, scratch)
    alice_s3.put_object(alice_grant["bucket"], "before.txt", io.BytesIO(b"ok"), 2)  # rclone now caches her key

    send_dir = scratch / "carol-send"
    write_random(send_dir / "one.bin", GiB)
    carol_box = carol.register("carol-sender")
    carol_agent = Agent(portal.url, carol_box["agent_token"], send_dir, scratch / "carol-state",
                        scratch.path).start()
    agents.append(carol_agent)
    [server] = serve_s3_processes(bob_agent)
    before = written(server)
    # No throughput probe (its test uploads would be written too): every byte the server writes is Carol's file.
    transfer_id = carol.call("POST", "/api/v1/transfers", 201, json={
        "sender": carol_box["container_id"], "receiver": box["container_id"], "sources": ["one.bin"],
        "network_check": "skip"})["transfer_id"]
    wait_for(lambda: (carol.transfer(transfer_id)["bytes"]["transferred"] or 0) > GiB // 10, 120,
             "Carol's transfer to be under way", 0.2)

    revoked_at = time.monotonic()
    bob.call("POST", f"/api/v1/grants/{alice_grant['grant_id']}/revoke")
    wait_for(lambda: refused(alice_s3, alice_grant["bucket"], "after.txt"), 10, "Alice's key to reach nothing", 0.2)
    took = time.monotonic() - revoked_at
    assert carol.transfer(transfer_id)["state"] == "active", "the revocation came too late to test anything"

    record = carol.wait_state(transfer_id, ("succeeded", "failed", "canceled"), timeout=300)
    assert record["state"] == "succeeded", (record, carol_agent.log()[-3000:])
    landed = folder / carol_grant["bucket"] / "one.bin"
    assert sha256(landed) == sha256(send_dir / "one.bin")
    wrote = written(server) - before
    # Every byte written once at the receiver: nothing sent again (a restarted server loses the upload). The
    # margin is the server's own small writes (its log, the folder's metadata: ~0.3 MiB measured), less than
    # the smallest part rclone sends again (5 MiB), so one part sent twice fails this.
    assert GiB <= wrote < GiB + 4 * 1024 * 1024, wrote
    assert serve_s3_processes(bob_agent) == [server]
    # Refused for good once refused (the tries before the agent synced may have landed: they were allowed).
    assert refused(alice_s3, alice_grant["bucket"], "long-after.txt")
    assert not (folder / alice_grant["bucket"] / "long-after.txt").exists()
    assert (folder / alice_grant["bucket"] / "before.txt").read_bytes() == b"ok"
    print(f"\nrevoked key refused {took:.1f} s after the revocation; the receiver wrote {wrote / GiB:.4f} GiB"
          f" for Carol's 1 GiB")


class Listener:
    """A TCP listener that counts who connects to it."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_a_sender_handed_a_refused_address_by_a_forged_record_connects_nowhere(portal, receiver):
    """The portal here allows local receivers (the tests' setting); the record is changed behind the
    heartbeat's back to a loopback address; Alice's sender runs with the default rule."""
    _, scratch, agents = receiver
    bob, alice = Person(portal.url, "bob-forged"), Person(portal.url, "alice-forged")
    box = bob.register("bob-forged-receiver", role="receiver")
    bob.call("POST", "/api/v1/grants", 201, json={"grantee": alice.username, "receiver": box["container_id"]})
    listener = Listener()
    try:
        portal.manage("shell", "-c", f"""
from portal.containers.models import Container
Container.objects.filter(pk="{box['container_id']}").update(endpoint="https://127.0.0.1:{listener.port}")
""")
        send_dir = scratch / "alice-send"
        write_random(send_dir / "secret-data.bin", 1 << 20)
        alice_box = alice.register("alice-forged-sender")
        agents.append(Agent(portal.url, alice_box["agent_token"], send_dir, scratch / "alice-state",
                            scratch.path, DTN_ALLOW_LOCAL_ENDPOINTS="false").start())
        transfer_id = alice.call("POST", "/api/v1/transfers", 201, json={
            "sender": alice_box["container_id"], "receiver": box["container_id"],
            "sources": ["secret-data.bin"], "network_check": "skip"})["transfer_id"]
        record = alice.wait_state(transfer_id, ("succeeded", "failed", "canceled"), timeout=60)
        assert record["state"] == "failed"
        assert record["fatal_error"]["reason"] == "destination_refused"
        assert "loopback or link-local" in record["fatal_error"]["message"]
        # The network check asked from the send page is refused the same way.
        check = alice.call("POST", "/api/v1/network-checks", (200, 201, 202), json={
            "sender": alice_box["container_id"], "receiver": box["container_id"]})
        answer = wait_for(lambda: (lambda c: c if c["state"] != "pending" else None)(
            alice.call("GET", f"/api/v1/network-checks/{check['check_id']}")), 30, "the network check's answer", 0.3)
        assert "loopback or link-local" in str(answer), answer
        time.sleep(0.5)
        assert listener.accepted == 0
    finally:
        listener.close()
