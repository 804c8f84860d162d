"""ASGI middleware refusing request bodies over a byte limit with 413 PAYLOAD_TOO_LARGE."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.platform.http.errors import ApiError, error_response


class BodySizeLimit:
    """Checks Content-Length, then buffers the streamed body up to the limit before the app runs.

    Buffering first is deliberate: FastAPI turns any exception raised while it reads the body into a
    400, so the limit has to be enforced before the request reaches it. Bodies here are small JSON.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.max_body_bytes:
            await self._refuse(scope, receive, send)
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # client gone: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # later reads wait for http.disconnect, as usual
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # the streamed count below still applies
        return 0

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(ApiError.payload_too_large(self.max_body_bytes))(scope, receive, send)
