"""The side channel's task helpers, where agent/receiver.py and agent/minio_grants.py
still import them from: they live in agent/tasks.py (the side channel itself in
agent/loop/sidechannel.py). The receiver issue points those imports there and
removes this module."""

from agent.tasks import FolderTasks, Located, TaskRefused, verify_each

__all__ = ["FolderTasks", "Located", "TaskRefused", "verify_each"]
