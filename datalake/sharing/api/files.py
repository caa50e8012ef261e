"""Serving one shared file: `HEAD`, and `GET` with or without a `Range`.

The connectors read a Parquet file's footer from its end and then its column chunks,
each with a `Range` request; Django's `FileResponse` answers none of them. A ranged
answer here is still a `FileResponse` over a window of the file (`FileWindow`), so
gunicorn sends it with `sendfile(2)` (the window's file descriptor, positioned at its
start, and the response's Content-Length), and any other server reads the window.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from django.http import FileResponse, HttpResponse, JsonResponse

RANGE = re.compile(r"^bytes=([0-9]{0,19})-([0-9]{0,19})$")


class FileWindow(io.RawIOBase):
    """Bytes start..end (exclusive) of an open file, as a file of their own."""

    def __init__(self, handle, start: int, end: int):
        super().__init__()
        self.handle = handle
        self.start, self.end = start, end
        handle.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.handle.fileno()

    def tell(self) -> int:
        return self.handle.tell() - self.start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self.start, io.SEEK_CUR: self.handle.tell(), io.SEEK_END: self.end}
        position = min(max(base[whence] + offset, self.start), self.end)
        self.handle.seek(position)
        return position - self.start

    def read(self, size: int = -1) -> bytes:
        left = self.end - self.handle.tell()
        size = left if size is None or size < 0 else min(size, left)
        return self.handle.read(size) if size > 0 else b""

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.handle.close()
        super().close()


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end exclusive) of a single `bytes=` range; None: the whole file;
    "unsatisfiable": a range past the end (416). Anything else is ignored, as
    RFC 9110 allows (the whole file is sent)."""
    if not header:
        return None
    match = RANGE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        return max(size - length, 0), size
    start = int(first)
    if last != "" and int(last) < start:  # not a valid range: ignored (RFC 9110 14.1.1)
        return None
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size:
        return "unsatisfiable"
    return start, end


def file_response(path: Path, method: str, range_header: str | None) -> HttpResponse:
    size = path.stat().st_size
    wanted = parse_range(range_header, size)
    if wanted == "unsatisfiable":  # in the API's envelope, which would drop the header
        detail = "The range starts past the end of the file."
        response = JsonResponse({"detail": detail, "code": "range_not_satisfiable"}, status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    if method == "HEAD":
        response = HttpResponse(status=200)
        response["Content-Length"] = str(size)
    else:
        start, end = wanted or (0, size)
        handle = open(path, "rb")  # noqa: SIM115 (closed by the response)
        response = FileResponse(FileWindow(handle, start, end), status=206 if wanted else 200)
        if wanted:
            response["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["Content-Type"] = "application/octet-stream"
    response["Cache-Control"] = "private, max-age=0"
    response["ETag"] = f'"{path.parent.name}-{path.name}-{size}"'
    return response


def within(root: Path, relative: str) -> Path | None:
    """The file `relative` under `root`, or None if it is not a regular file there."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return None
    return path


__all__ = ["FileWindow", "file_response", "parse_range", "within"]
