"""Fakes for unit tests of the agent: a clock that moves only when slept, an
rclone rc that plays scripted jobs, a portal transport that answers from a
script, and a channel that records reports. None of them is used by the
end-to-end tests, which run the real things."""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass, field

import requests

from agent.loop.portal import ReportReply
from agent.rclone import Job, JobNotFound, RcError, RcUnavailable


class FakeClock:
    def __init__(self, start: float = 1000.0):
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Frame:
    """What rclone says about a job at one poll."""

    finished: bool = False
    success: bool = False
    error: str = ""
    stats: dict = field(default_factory=dict)
    transferred: list = field(default_factory=list)  # entries added at this poll


def done(name: str, size: int, *, error: str = "", checked: bool = False, n: int = 0) -> dict:
    return {"name": name, "size": size, "bytes": 0 if checked else size, "error": error, "checked": checked,
            "what": "checking" if checked else "transferring", "started_at": f"2026-01-01T00:00:{n:02}Z",
            "completed_at": f"2026-01-01T00:00:{n:02}.5Z"}


class FakeRc:
    """rclone's rc as the runner uses it. Each job started plays the next script
    (a list of Frames), one frame per `job/status` call; the last frame repeats."""

    def __init__(self, *scripts: list[Frame]):
        self.scripts = list(scripts)
        self.calls: list[tuple] = []
        self.jobs: dict[int, dict] = {}
        self.next_jobid = 1
        self.stat_results: list = []  # per stat call: None (ok) or an exception to raise
        self.status_errors: list = []  # per job/status call: None or an exception
        self.bwlimits: list[str] = []
        self.stopped: list[int] = []
        self.groups: dict[str, dict] = {}
        # The destination, as operations/list shows it: by default every file of the folders copied has
        # landed; names in `missing` did not.
        self.missing: set[str] = set()
        self.there: list[dict] = []  # files at the destination before any job, as operations/list gives them
        # Folders at the destination by the remote's root ("bucket/path/"), as a one-level operations/list gives them.
        self.folders_there: dict[str, list[str]] = {}

    def _record(self, *call):
        self.calls.append(call)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    # --- rc calls ---
    def version(self):
        self._record("version")
        return "v1.75.2"

    def stat(self, fs, remote, config=None):
        self._record("stat", fs, remote, config)
        if self.stat_results:
            result = self.stat_results.pop(0)
            if isinstance(result, Exception):
                raise result
        return None

    def bwlimit(self, rate):
        self._record("bwlimit", rate)
        self.bwlimits.append(rate)
        return {"rate": rate}

    def _start(self, kind, group, **details):
        jobid = self.next_jobid
        self.next_jobid += 1
        script = self.scripts.pop(0) if self.scripts else [Frame(finished=True, success=True)]
        self.jobs[jobid] = {"kind": kind, "group": group, "script": script, "at": -1, "seen": [], **details}
        self.groups[group] = {"job": jobid}
        return Job(jobid, "exec-1")

    def copy_dir(self, src_fs, dst_fs, *, group, config, filters=None):
        self._record("copy_dir", src_fs, dst_fs, group, config)
        return self._start("dir", group, src=src_fs, dst=dst_fs, config=config, filters=filters)

    def copy_file(self, src_fs, src_remote, dst_fs, dst_remote, *, group, config):
        self._record("copy_file", src_fs, src_remote, dst_fs, dst_remote, group, config)
        return self._start("file", group, src=src_fs, src_remote=src_remote, dst=dst_fs, dst_remote=dst_remote,
                           config=config)

    def list_files(self, fs, remote=""):
        self._record("list_files", fs, remote)
        found = list(self.there)
        for job in self.jobs.values():
            if job["kind"] != "dir" or job["dst"]["_root"] != fs["_root"]:
                continue
            root = Path(job["src"]["_root"])
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root).as_posix()
                if path.is_file() and not path.is_symlink() and rel not in self.missing:
                    found.append({"Path": rel, "Size": path.stat().st_size})
        return found

    def list_folders(self, fs, remote=""):
        self._record("list_folders", fs, remote)
        return [{"Path": name, "Name": name, "IsDir": True} for name in self.folders_there.get(fs["_root"], [])]

    def _job_of(self, group):
        entry = self.groups.get(group)
        return self.jobs[entry["job"]] if entry else None

    def _frame(self, job) -> Frame:
        return job["script"][max(0, min(job["at"], len(job["script"]) - 1))]

    def job_status(self, jobid):
        self._record("job_status", jobid)
        if self.status_errors:
            error = self.status_errors.pop(0)
            if error is not None:
                raise error
        job = self.jobs[jobid]
        if job.get("stopped"):
            return {"finished": True, "success": False, "error": "context canceled", "executeId": "exec-1"}
        job["at"] = min(job["at"] + 1, len(job["script"]) - 1)
        frame = self._frame(job)
        job["seen"].extend(e for e in frame.transferred if e not in job["seen"])
        return {"finished": frame.finished, "success": frame.success, "error": frame.error, "executeId": "exec-1"}

    def stats(self, group):
        self._record("stats", group)
        job = self._job_of(group)
        return dict(self._frame(job).stats) if job and job["at"] >= 0 else {}

    def transferred(self, group):
        self._record("transferred", group)
        job = self._job_of(group)
        return list(job["seen"][-100:]) if job else []

    def job_stop(self, jobid):
        self._record("job_stop", jobid)
        self.stopped.append(jobid)
        self.jobs[jobid]["stopped"] = True

    def stop_group(self, group):
        self._record("stop_group", group)

    def stats_delete(self, group):
        self._record("stats_delete", group)


class FakeChannel:
    """The controller's side of a running command: records reports, answers from a script."""

    def __init__(self, *, cancel_at: int | None = None, stop_at: int | None = None, fail_reports: int = 0,
                 verdicts: list[dict] | None = None):
        self.reports: list[dict] = []
        self.cancel_at = cancel_at
        self.stop_at = stop_at
        self.fail_reports = fail_reports
        # The portal's answers to reports of the verifying phase, in order; the last one repeats.
        self.verdicts = list(verdicts or [])
        self.ticks = 0
        self.stopping = False

    def report(self, progress):
        # A deep copy: the runner must not depend on the portal keeping its objects.
        self.reports.append(json.loads(json.dumps(progress)))
        if self.stop_at is not None and len(self.reports) >= self.stop_at:
            self.stopping = True
        if self.fail_reports:
            self.fail_reports -= 1
            return None
        verification = None
        if progress.get("phase") == "verifying" and self.verdicts:
            verification = self.verdicts.pop(0) if len(self.verdicts) > 1 else self.verdicts[0]
        return ReportReply("running", self.cancel_at is not None and len(self.reports) >= self.cancel_at,
                           verification)

    def tick(self):
        self.ticks += 1

    def files(self) -> dict[str, dict]:
        merged = {}
        for report in self.reports:
            for row in report.get("files", []):
                merged[row["path"]] = row
        return merged

    def events(self) -> list[dict]:
        return [event for report in self.reports for event in report.get("events", [])]


class FakeResponse:
    def __init__(self, status: int, body=None):
        self.status_code = status
        self._body = body
        self.text = json.dumps(body) if body is not None else ""
        self.content = self.text.encode()

    def json(self):
        if self._body is None:
            raise ValueError("no body")
        return self._body


class FakeSession:
    """A requests.Session stand-in: answers each request from a queue of
    FakeResponses (or raises the exception queued), and records requests."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[dict] = []

    def queue(self, *answers):
        self.answers.extend(answers)

    def request(self, method, url, **kwargs):
        self.requests.append({"method": method, "url": url, **kwargs})
        if not self.answers:
            raise AssertionError(f"unexpected request {method} {url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def post(self, url, **kwargs):
        return self.request("POST", url, **kwargs)


def unavailable():
    return requests.ConnectionError("connection refused")


__all__ = ["FakeClock", "Frame", "done", "FakeRc", "FakeChannel", "FakeResponse", "FakeSession", "unavailable",
           "RcError", "RcUnavailable", "JobNotFound"]


class FakeS3:
    """An S3 bucket in memory for the network check; `fail` raises on every call."""

    def __init__(self, fail=None):
        self.objects: dict[str, bytes] = {}
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    def _check(self, op, key):
        self.calls.append((op, key))
        if self.fail is not None:
            raise self.fail

    def put(self, key, data):
        self._check("put", key)
        self.objects[key] = bytes(data)

    def get(self, key):
        self._check("get", key)
        return self.objects[key]

    def remove(self, key):
        self._check("remove", key)
        self.objects.pop(key, None)
