"""HTTP Range for resumable downloads (packages, artifacts): `bytes=N-` or `bytes=N-M`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pyarrow as pa
from fastapi import Request
from fastapi.responses import StreamingResponse

from bigevy.errors import RangeNotSatisfiable

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
CHUNK = 256 * 1024


def byte_range(request: Request, size: int) -> tuple[int, int]:
    """The bytes asked for, [start, end); the whole file without a Range header (or with one
    this does not read, as RFC 9110 allows). A start past the end is a 416."""
    match = _RANGE.match(request.headers.get("range", ""))
    if not match:
        return 0, size
    start = int(match.group(1))
    if start >= size:
        raise RangeNotSatisfiable(
            f"range starts at byte {start}; the file has {size} bytes", param="Range", size=size
        )
    end = min(size, int(match.group(2)) + 1) if match.group(2) else size
    return start, max(end, start + 1)


def ranged_file(
    request: Request,
    size: int,
    open_file: Callable[[], pa.NativeFile],
    media_type: str,
    etag: str,
) -> StreamingResponse:
    """The file, or the range asked for (206), streamed from a seekable source in chunks."""
    start, end = byte_range(request, size)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start), "ETag": f'"{etag}"'}
    if (start, end) != (0, size):
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"

    def chunks() -> Iterator[bytes]:  # a sync iterator: Starlette reads it in a thread
        with open_file() as f:
            f.seek(start)
            left = end - start
            while left > 0 and (chunk := f.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk

    status = 206 if "Content-Range" in headers else 200
    return StreamingResponse(chunks(), status, headers=headers, media_type=media_type)
