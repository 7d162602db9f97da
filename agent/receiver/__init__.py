"""The receiver side of the agent: its grants served at one address, and what landed verified.

- `site`: ReceiverSite, what the controller drives (refresh after heartbeats, describe in them)
- `backend`: the surface both backends have (Backend), the Grant, and the S3 client they share
- `s3server`: the agent's own backend, one `rclone serve s3` on one port for every grant
- `grantbook` and `authproxy`: how that one server tells one grant's key from another's
- `minio`: the backend for a MinIO the site already runs
"""
