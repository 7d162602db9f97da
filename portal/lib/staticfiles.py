"""WhiteNoise for a portal served as ASGI.

WhiteNoise 6's middleware is synchronous only, and one synchronous middleware
makes Django run each request's whole chain below it on a thread of its own,
async views included: an agent's claim held for 25 s then held a thread, not a
coroutine, and 2,000 agents meant thousands of threads per server process
(measured in docs/performance.md). This subclass is async-capable: a static file
is served from a thread, every other request goes straight on, unadapted."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, *args, **kwargs):
        super().__init__(get_response, *args, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
