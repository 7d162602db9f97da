"""One transfer holding a million per-file rows (issue 22): its record, its status, its page and one page of
its files cost the same as with ten; the CSV manifest streams, all of it, in bounded memory and time; the
per-file writes of a report stay one bulk statement per batch, looked up through the unique index.

The rows are made by the database itself (one INSERT ... SELECT over a recursive CTE on SQLite,
generate_series on PostgreSQL), a few seconds for a million. Bounds are the issue's (1 s for the record, the
status and the page; 30 s for the CSV), with the measured figures printed (`-s`) for docs/performance.md."""

from __future__ import annotations

import contextlib
import json
import time
import tracemalloc
import warnings

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dtn_protocol.states import Verification
from portal.containers import tasks
from portal.containers.models import AgentTask, TaskState
from portal.transfers import queue, recording, verification
from portal.transfers.models import Command, Transfer, TransferFile
from portal.transfers.progress import FileResult
from tests.portal.sending import checked_in, grant, send

API = "/api/v1/transfers"
MILLION = 1_000_000
SHA = "ab" * 32
ISSUE_BOUND_S = 1.0
CSV_BOUND_S = 30.0
# Not in the issue: a report's 2,000 files against a million recorded (~0.25 s here, 0.5 s on a loaded machine).
MERGE_BOUND_S = 2.0


def synthetic_path(number: int) -> str:
    return f"data/{number // 1000:04d}/file-{number:07d}.bin"


def fill(transfer: Transfer, count: int) -> None:
    """`count` rows for `transfer`, numbered 0..count-1, made by the database: paths as synthetic_path, keys as
    recording.path_key, every third file skipped, the rest sent, all verified (asked of the receiver now)."""
    transfer_id = TransferFile._meta.get_field("transfer").get_db_prep_value(transfer.pk, connection)
    table = TransferFile._meta.db_table
    columns = "transfer_id, path, path_key, size, sha256, receiver_sha256, outcome, error, updated_at, verify_asked_at"
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT %s, p, encode(sha256(convert_to(p, 'UTF8')), 'hex'), "
                "i %% 1024, %s, %s, CASE WHEN i %% 3 = 0 THEN 'skipped' ELSE 'sent' END, '', %s, %s FROM ("
                "SELECT i, 'data/' || lpad((i / 1000)::text, 4, '0') || '/file-' || lpad(i::text, 7, '0') || '.bin'"
                " AS p FROM generate_series(0, %s) AS i) AS numbered",
                [transfer_id, SHA, SHA, now, now, count - 1])
        else:
            connection.ensure_connection()
            connection.connection.create_function("dtn_key", 1, recording.path_key, deterministic=True)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
                "WHERE i < %s), named(i, p) AS (SELECT i, printf('data/%%04d/file-%%07d.bin', i / 1000, i) FROM n) "
                "SELECT %s, p, dtn_key(p), i %% 1024, %s, %s, CASE WHEN i %% 3 = 0 THEN 'skipped' ELSE 'sent' END, "
                "'', %s, %s FROM named",
                [count - 1, transfer_id, SHA, SHA, now, now])
        if connection.vendor == "postgresql":
            # What autovacuum does after a bulk load once it commits; inside the test's transaction, by hand.
            cursor.execute(f"ANALYZE {table}")
    skipped = (count + 2) // 3
    sizes = sum(i % 1024 for i in range(count))
    skipped_bytes = sum(i % 1024 for i in range(0, count, 3))
    Transfer.objects.filter(pk=transfer.pk).update(
        files_total=count, files_transferred=count - skipped, files_skipped=skipped, files_verified=count, files_failed=0,
        bytes_total=sizes, bytes_transferred=sizes - skipped_bytes, bytes_skipped=skipped_bytes,
        bytes_verified=sizes, bytes_failed=0)


@pytest.fixture
def transfer(alice, alice_sender, bob_receiver):
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver, label="a million files")
    queue.claim_next(alice_sender, "inst-1")
    return transfer


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def first_and_rest(response):
    """Time to the first chunk, the whole body, and the total time."""
    started = time.perf_counter()
    chunks = iter(response.streaming_content)
    first = next(chunks)
    first_s = time.perf_counter() - started
    body = first + b"".join(chunks)
    return body, first_s, time.perf_counter() - started


def record_queries(call, check_plans: bool = False) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = call()
        assert response.status_code == 200
    if check_plans:
        assert_bounded(queries.captured_queries)
    return len(queries)


@contextlib.contextmanager
def counted_steps():
    """SQLite's virtual-machine steps (in thousands, counted every 1,000) while the block runs: the work of
    its queries, whatever the machine's load; [0] on PostgreSQL."""
    steps = [0]
    if connection.vendor != "sqlite":
        yield steps
        return

    def tick():
        steps[0] += 1000
        return 0

    connection.connection.set_progress_handler(tick, 1000)
    try:
        yield steps
    finally:
        connection.connection.set_progress_handler(None, 0)


def explain(sql: str) -> list[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN {sql}")
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return [row[-1] for row in cursor.fetchall()]


def unbounded_steps(sql: str) -> list[str]:
    """The steps of a query's plan that read or sort the file rows as a whole: a table or index scanned end
    to end, or a sort of what was read (a first page sorted out of a million rows is the whole million)."""
    table = TransferFile._meta.db_table
    plan = explain(sql)
    if connection.vendor == "postgresql":
        return [step for step in plan if f"Seq Scan on {table}" in step or "Sort" in step]
    return [step for step in plan if (step.startswith("SCAN") and table in step) or "TEMP B-TREE" in step]


def assert_bounded(captured: list[dict]) -> None:
    """Every SELECT of the file rows reads a bounded range of an index (asked of a large, analyzed table: with
    a handful of rows a planner may well read them all)."""
    table = TransferFile._meta.db_table
    for query in captured:
        sql = query["sql"]
        if sql.lstrip().upper().startswith("SELECT") and table in sql:
            steps = unbounded_steps(sql)
            assert not steps, f"{sql[:300]}\nreads the file rows as a whole: {steps}"


def views(alice_api, client, transfer, deep_after: int):
    return {
        "record": lambda: alice_api.get(f"{API}/{transfer.pk}"),
        "status": lambda: alice_api.get(f"{API}/{transfer.pk}/status"),
        "page": lambda: client.get(f"/portal/transfers/{transfer.pk}/"),
        "files, first page": lambda: alice_api.get(f"{API}/{transfer.pk}/files?limit=500"),
        "files, a page near the end": lambda: alice_api.get(f"{API}/{transfer.pk}/files?limit=500&after={deep_after}"),
    }


def report(first_existing: int, new_from: int, count: int = 1000) -> list[FileResult]:
    """A report as an agent sends it (2,000 files): `count` files already recorded now failed, `count` new."""
    failed = [FileResult(path=synthetic_path(i), size=i % 1024, sha256=SHA, receiver_sha256="", outcome="failed",
                         error="rclone: cut short") for i in range(first_existing, first_existing + count)]
    sent = [FileResult(path=synthetic_path(i), size=7, sha256=SHA, receiver_sha256="", outcome="sent", error="")
            for i in range(new_from, new_from + count)]
    return failed + sent


def merged(transfer, results, check_plans: bool = False) -> tuple[int, float]:
    transfer = Transfer.objects.get(pk=transfer.pk)
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        recording.merge_files(transfer, results)
        seconds = time.perf_counter() - started
    if check_plans:
        assert_bounded(queries.captured_queries)
    return len(queries), seconds


def last_id(transfer) -> int:
    return TransferFile.objects.filter(transfer=transfer).order_by("-id").values_list("id", flat=True)[0]


@pytest.mark.django_db
def test_a_million_files_cost_the_record_status_page_and_a_page_of_files_nothing_more(alice_api, client, alice,
                                                                                        transfer):
    client.force_login(alice)
    TransferFile.objects.bulk_create(
        TransferFile(transfer=transfer, path=synthetic_path(i), path_key=recording.path_key(synthetic_path(i)),
                     size=1, outcome="sent") for i in range(10))
    small = views(alice_api, client, transfer, deep_after=last_id(transfer) - 5)
    for call in small.values():
        call()  # warm: a token's first use is written down once
    queries_at_ten = {name: record_queries(call) for name, call in small.items()}
    merge_queries_at_ten, _ = merged(transfer, report(0, 100_000))
    TransferFile.objects.filter(transfer=transfer).delete()

    _, fill_s = timed(lambda: fill(transfer, MILLION))
    print(f"\n{connection.vendor}: {MILLION:,} rows made in {fill_s:.1f} s")
    for name, call in views(alice_api, client, transfer, deep_after=last_id(transfer) - 700).items():
        call()
        response, seconds = timed(call)
        assert response.status_code == 200
        print(f"{connection.vendor}: {name} at 1M files: {seconds * 1000:.0f} ms")
        assert seconds <= ISSUE_BOUND_S, f"{name} took {seconds:.2f} s with a million files"
        assert record_queries(call, check_plans=True) == queries_at_ten[name], (
            f"{name}'s queries grew with the file count")
    record = alice_api.get(f"{API}/{transfer.pk}").json()
    assert record["files"]["total"] == MILLION and record["files"]["verified"] == MILLION

    first = alice_api.get(f"{API}/{transfer.pk}/files?limit=500").json()
    assert [f["path"] for f in first["results"]] == [synthetic_path(i) for i in range(500)]
    deep = alice_api.get(f"{API}/{transfer.pk}/files?limit=500&after={last_id(transfer) - 700}").json()
    assert [f["path"] for f in deep["results"]] == [synthetic_path(i) for i in range(MILLION - 700, MILLION - 200)]
    last = alice_api.get(deep["next"]).json()
    assert len(last["results"]) == 200 and last["next"] is None

    # A report's per-file writes: the same statements whatever the transfer holds, found by the unique index.
    queries, seconds = merged(transfer, report(500_000, MILLION), check_plans=True)
    print(f"{connection.vendor}: a report of 2,000 files merged at 1M files in {seconds * 1000:.0f} ms, "
          f"{queries} queries")
    assert queries == merge_queries_at_ten
    assert seconds <= MERGE_BOUND_S
    transfer.refresh_from_db()
    assert transfer.files_failed == 1000 and transfer.files_verified == MILLION - 1000
    assert TransferFile.objects.filter(transfer=transfer, outcome="failed").count() == 1000

    # Each report asks the receiver about the files not asked yet: found by a range of an index, not by
    # reading the million asked already.
    command = Command.objects.get(pk=transfer.latest_command_id)
    with CaptureQueriesContext(connection) as queries, counted_steps() as steps:
        started = time.perf_counter()
        verification.request(transfer, command, final=False)
        seconds = time.perf_counter() - started
    assert_bounded(queries.captured_queries)
    if connection.vendor == "sqlite":
        # Reading a million rows is tens of millions of steps of SQLite's machine; the files not asked yet, few.
        assert steps[0] < 2_000_000, f"{steps[0]:,} steps"
    else:
        plans = [" ".join(explain(q["sql"])) for q in queries.captured_queries
                 if q["sql"].startswith("SELECT") and TransferFile._meta.db_table in q["sql"]]
        assert plans and all("transfer_file_asked_idx" in plan for plan in plans), plans
    print(f"{connection.vendor}: a report's request for the receiver's checksums at 1M files in "
          f"{seconds * 1000:.0f} ms")
    assert TransferFile.objects.filter(transfer=transfer, verify_asked_at=None).count() == 0  # the 1,000 new

    # The sender's reports in its `verifying` phase: while the receiver works, the verdict reads no file row;
    # once the receiver answered, the database picks out the files to name, never the worker.
    command = Command.objects.get(pk=transfer.latest_command_id)
    task = tasks.ask(transfer.receiver, verification.RECEIVER_TASK, {"paths": []}, command=command)
    with CaptureQueriesContext(connection) as queries:
        assert verification.verdict(transfer, command) == {"state": Verification.PENDING}
    assert not [q for q in queries.captured_queries if TransferFile._meta.db_table in q["sql"]]
    assert AgentTask.objects.filter(command=command).count() == 2  # the report's and this one
    AgentTask.objects.filter(command=command).update(state=TaskState.ANSWERED, ok=True)
    tracemalloc.start()
    try:
        verdict, seconds = timed(lambda: verification.verdict(transfer, command))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"{connection.vendor}: the verdict naming 1,000 files among 1M in {seconds * 1000:.0f} ms, "
          f"peak {peak / 2**20:.1f} MiB traced")
    assert verdict["state"] == Verification.FAILED and len(verdict["files"]) == 1000
    assert verdict["files"][0] == synthetic_path(MILLION) and "and 980 more" in verdict["message"]
    assert peak < 16 * 2**20

    response = alice_api.get(f"{API}/{transfer.pk}/manifest.csv")
    body, first_s, total_s = first_and_rest(response)
    print(f"{connection.vendor}: CSV at 1M files: first bytes after {first_s * 1000:.0f} ms, "
          f"{len(body) / 2**20:.0f} MiB in {total_s:.1f} s")
    assert first_s <= ISSUE_BOUND_S
    assert body.count(b"\n") == MILLION + 1000 + 1
    assert total_s <= CSV_BOUND_S


async def _consume(response) -> tuple[int, int, int]:
    """Serve the answer as the ASGI handler does: chunks, lines, bytes."""
    chunks = lines = size = 0
    async for part in response:
        chunks += 1
        lines += part.count(b"\n")
        size += len(part)
    return chunks, lines, size


@pytest.mark.django_db
def test_the_csv_manifest_streams_under_asgi_in_bounded_memory(alice_api, transfer):
    """Served by uvicorn workers: Django would read a synchronous iterator whole into a list first."""
    rows = 200_000
    fill(transfer, rows)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "must consume synchronous iterators" is a Warning
            response = alice_api.get(f"{API}/{transfer.pk}/manifest.csv")
            chunks, lines, size = async_to_sync(_consume)(response)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\n{connection.vendor}: CSV of {rows:,} rows under ASGI: {size / 2**20:.1f} MiB in {chunks} chunks, "
          f"peak {peak / 2**20:.1f} MiB traced")
    assert lines == rows + 1
    assert chunks > 10
    assert peak < 12 * 2**20 < size / 2


@pytest.mark.django_db
def test_the_json_manifest_of_many_files_is_one_valid_document(alice_api, transfer):
    fill(transfer, 20_000)
    response = alice_api.get(f"{API}/{transfer.pk}/manifest.json")
    document = json.loads(b"".join(response.streaming_content))
    assert len(document["manifest"]) == 20_000
    assert document["manifest"][0] == {"path": synthetic_path(0), "size": 0, "sha256": SHA, "receiver_sha256": SHA,
                                       "outcome": "skipped", "error": ""}
    assert document["files"]["total"] == 20_000
