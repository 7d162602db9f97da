"""Side-channel tasks: the handlers, and the worker that answers them."""

from __future__ import annotations

import hashlib
import os

import pytest

from agent.loop.portal import PortalUnavailable, TokenRejected
from agent.loop.sidechannel import SideChannel
from agent.sender.tasks import sender_handlers
from agent.tasks import FolderTasks, TaskRefused


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "send"
    (root / "run 1").mkdir(parents=True)
    (root / "run 1" / "a.bin").write_bytes(b"a" * 10)
    (root / "notes ü.txt").write_text("hello")
    (tmp_path / "private.txt").write_text("not in the send folder")
    os.symlink(tmp_path, root / "out")
    return FolderTasks(root)


class Answers:
    def __init__(self, *failures):
        self.failures = list(failures)
        self.answers = []

    def answer_task(self, task_id, *, ok, result=None, error=""):
        if self.failures:
            raise self.failures.pop(0)
        self.answers.append((task_id, ok, result, error))


def test_the_send_folder_is_listed_one_level_at_a_time(folder):
    top = folder.list_folder({})
    assert top["path"] == "" and not top["truncated"]
    assert [(e["name"], e["type"], e["size"]) for e in top["entries"]] == [
        ("notes ü.txt", "file", 5), ("out", "link", None), ("run 1", "dir", None)]
    inner = folder.list_folder({"path": "run 1"})
    assert [e["path"] for e in inner["entries"]] == ["run 1/a.bin"]
    assert folder.list_folder({"limit": 1})["truncated"] is True


@pytest.mark.parametrize("path, words", [("../", "leads out"), ("out", "outside the send folder"),
                                         ("/etc", "absolute"), ("nope", "does not exist"),
                                         ("notes ü.txt", "a file, not a folder")])
def test_listing_outside_the_send_folder_is_refused(folder, path, words):
    with pytest.raises(TaskRefused) as refused:
        folder.list_folder({"path": path})
    assert words in str(refused.value)


def test_files_are_verified_by_sha256_and_each_refusal_is_per_file(folder):
    result = folder.verify_files({"paths": ["run 1/a.bin", "out/private.txt", "out/send/notes ü.txt", "run 1"]})
    assert result["files"] == [
        {"path": "run 1/a.bin", "size": 10, "sha256": hashlib.sha256(b"a" * 10).hexdigest()},
        {"path": "out/private.txt", "error": "'out/private.txt' resolves outside the send folder"
                                             " (through a symbolic link)"},
        # A link that leads back inside the folder is fine.
        {"path": "out/send/notes ü.txt", "size": 5, "sha256": hashlib.sha256(b"hello").hexdigest()},
        {"path": "run 1", "error": "a folder, not a file"},
    ]


def test_the_worker_answers_each_task_once_with_its_result_or_refusal(folder):
    portal = Answers()
    side = SideChannel(portal, sender_handlers(folder.root))
    tasks = [{"task_id": "t1", "kind": "list_send_folder", "params": {"path": "run 1"}},
             {"task_id": "t2", "kind": "network_check", "params": {}},
             {"task_id": "t3", "kind": "list_send_folder", "params": {"path": "../.."}}]
    assert side.submit(tasks) == 3
    assert side.submit(tasks[:1]) == 0  # offered again in the next heartbeat: not run twice
    side.start()
    side.stop()
    by_id = {a[0]: a for a in portal.answers}
    assert by_id["t1"][1] is True and by_id["t1"][2]["entries"][0]["name"] == "a.bin"
    assert by_id["t2"][1] is False and "no task 'network_check'" in by_id["t2"][3]
    assert by_id["t3"][1] is False and "leads out of the send folder" in by_id["t3"][3]


def test_a_task_whose_answer_did_not_get_through_is_taken_again_when_offered_again(folder):
    portal = Answers(PortalUnavailable("down"))
    side = SideChannel(portal, sender_handlers(folder.root))
    task = {"task_id": "t1", "kind": "list_send_folder", "params": {}}
    side.submit([task])
    side.run_one(side._queue.get())
    assert portal.answers == [] and side.submit([task]) == 1
    side.run_one(side._queue.get())
    assert portal.answers[0][0] == "t1"


def test_a_handler_bug_is_answered_as_an_error_and_a_rejected_token_is_flagged(folder):
    portal = Answers(TokenRejected("revoked"))

    def broken(params):
        raise KeyError("oops")

    side = SideChannel(portal, {"broken": broken})
    side.run_one({"task_id": "t1", "kind": "broken", "params": {}})
    assert side.token_rejected.is_set()
    side.run_one({"task_id": "t2", "kind": "broken", "params": {}})
    assert portal.answers == [("t2", False, {}, "the agent failed: KeyError")]


class Poller:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.waits = []

    def wait_tasks(self, wait):
        self.waits.append(wait)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_tasks_are_long_polled_and_a_portal_without_the_poll_falls_back_to_heartbeats(folder):
    from agent.loop.portal import PortalError

    poller = Poller([{"task_id": "t1", "kind": "list_send_folder", "params": {}}], [],
                    PortalError("tasks/next refused (404)", 404))
    side = SideChannel(Answers(), sender_handlers(folder.root), poller=poller, poll_seconds=25)
    assert side.poll_once() and side.poll_once()
    assert side.poll_once() is False
    assert poller.waits == [25, 25, 25] and side._queue.qsize() == 1


def test_an_unreachable_portal_is_polled_again_after_a_backoff_and_a_refused_token_stops_polling(folder):
    import random

    from agent.loop.portal import Backoff

    poller = Poller(PortalUnavailable("down"), TokenRejected("revoked"))
    backoff = Backoff(base=0.01, cap=0.02, rng=random.Random(1))
    side = SideChannel(Answers(), sender_handlers(folder.root), poller=poller, backoff=backoff)
    assert side.poll_once() is True
    assert side.poll_once() is False and side.token_rejected.is_set()
