"""The side channel's task helpers, where the receiver's modules (agent/receiver/minio.py,
s3server.py) still import them from: they live in agent/tasks.py (the side channel itself
in agent/loop/sidechannel.py). Pointing those two imports at agent/tasks.py removes this
module."""

from agent.tasks import FolderTasks, Located, TaskRefused, verify_each

__all__ = ["FolderTasks", "Located", "TaskRefused", "verify_each"]
