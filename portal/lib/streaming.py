"""A streamed answer over rows read from the database, streamed under ASGI as well as under WSGI.

Django's StreamingHttpResponse, served by an ASGI server (the portal runs under uvicorn workers), reads a
synchronous iterator into a list before it sends the first byte (`StreamingHttpResponse.__aiter__`, "must
consume synchronous iterators"): a manifest of a million files, whole, in a worker's memory. Rows come from a
database cursor, which is synchronous and belongs to the thread that opened it; so this answer keeps the
synchronous iterator and, under ASGI, hands it over a batch at a time from the request's own sync thread
(asgiref's thread-sensitive executor, the one the view ran on)."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse

# What one hop from the event loop to the request's thread brings back.
BATCH_BYTES = 256 * 1024


def _take(chunks) -> bytes:
    parts, size = [], 0
    for part in chunks:
        parts.append(part)
        size += len(part)
        if size >= BATCH_BYTES:
            break
    return b"".join(parts)


class RowStream(StreamingHttpResponse):
    """StreamingHttpResponse over a synchronous iterator, streamed in bounded memory under ASGI too."""

    async def __aiter__(self):
        if self.is_async:
            async for part in super().__aiter__():
                yield part
            return
        chunks = iter(self.streaming_content)
        take = sync_to_async(_take, thread_sensitive=True)
        while True:
            part = await take(chunks)
            if not part:
                return
            yield part
