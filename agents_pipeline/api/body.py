"""Reading a request body within a cap and a deadline, before anything else is done with it.

A Content-Length over the cap is refused before a byte is read; a chunked body is counted as it
arrives and refused the moment it passes the cap, so no request makes the server hold more than
the cap in memory. A body that has not arrived within the deadline is refused too (slow clients
would otherwise hold their slot for ever).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request


class BodyRefused(Exception):
    """The body was not read: ``status`` is 413 (too large), 408 (too slow) or 400 (bad length)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, at most ``limit`` bytes, within ``timeout_s`` seconds."""
    declared = request.headers.get("content-length")
    if declared is None and "transfer-encoding" not in request.headers:
        return b""            # no body (a plain GET ping): nothing to wait for
    if declared is not None:
        if not declared.isdigit():
            raise BodyRefused(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise BodyRefused(413, f"request body larger than {limit} bytes")
        if declared == "0":
            return b""

    async def collect() -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyRefused(413, f"request body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        async with asyncio.timeout(timeout_s):       # no task of its own, unlike wait_for
            return await collect()
    except TimeoutError:
        raise BodyRefused(408, f"request body not received within {timeout_s:.0f} s") from None
