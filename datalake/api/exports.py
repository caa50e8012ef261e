"""`rows/` as CSV or Arrow: content negotiation and the streamed response.

`Accept: text/csv`, `Accept: application/vnd.apache.arrow.stream`, `?format=csv` or
`?format=arrow` on a `rows/` endpoint streams every row of the query (not a page):
`datalake.query.export.Export` reads them, the renderer encodes them batch by batch.

- `page`, `cursor` and `page_size` page JSON only: with an export they are a 400 naming
  the parameter (never ignored).
- Errors before the first byte (a bad parameter, no grant, ...) are the JSON envelope
  with their status, whatever was asked for. An error after streaming began cannot
  change the status: the stream is aborted (logged), so the client sees a truncated
  transfer (no final chunk; an Arrow stream without its end-of-stream marker).
- `X-Data-Version`: the version the export read (in its own transaction), for versioned
  tables; `Content-Disposition: attachment` with `<resource>[-v<n>].<csv|arrows>`.
"""

from __future__ import annotations

import logging

from django.http import StreamingHttpResponse
from rest_framework.response import Response
from rest_framework.settings import api_settings

from datalake.api.renderers import ArrowRenderer, CSVRenderer, ExportRenderer, FastJSONRenderer
from datalake.errors import Invalid
from datalake.query.export import Export
from datalake.query.grammar import RowQuery

logger = logging.getLogger(__name__)
ROWS_RENDERERS = [*api_settings.DEFAULT_RENDERER_CLASSES, CSVRenderer, ArrowRenderer]
PAGING_ONLY = ("page", "cursor", "page_size")


def is_export(request) -> bool:
    return isinstance(getattr(request, "accepted_renderer", None), ExportRenderer)


def export_response(request, query: RowQuery, version: int | None = None, on_batch=None):
    """The streamed export of `query` (at `version`) in the negotiated format; `on_batch`:
    the row quota's meter (`accounts.quotas.export_meter`)."""
    refuse_paging(request)
    renderer = request.accepted_renderer
    export = Export(query, version, on_batch=on_batch)
    response = StreamingHttpResponse(
        _Stream(renderer.stream(export), export), content_type=renderer.media_type
    )
    suffix = f"-v{version}" if version is not None else ""
    filename = f"{query.entry.name}{suffix}.{renderer.extension}"  # names are [A-Za-z0-9_-]
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    if export.data_version is not None:
        response["X-Data-Version"] = str(export.data_version)
    return response


def refuse_paging(request) -> None:
    """`page`, `cursor` and `page_size` page JSON only: with an export, a 400 naming it."""
    for name in PAGING_ONLY:
        if name in request.query_params:
            raise Invalid({name: [f"An export streams every row: remove `{name}`."]})


class ExportErrorsAsJson:
    """A view mixin: an error answer of an export request is rendered as JSON."""

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and is_export(request):
            request.accepted_renderer = FastJSONRenderer()
            request.accepted_media_type = FastJSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class _Stream:
    """The response's chunks; `close()` (Django calls it, streamed or not) ends the
    export's transaction. An error while streaming is logged and aborts the transfer."""

    def __init__(self, chunks, export: Export):
        self.chunks, self.export = chunks, export

    def __iter__(self):
        try:
            yield from self.chunks
        except Exception:
            logger.exception("Export of %s aborted while streaming", self.export.query.entry.name)
            raise

    def close(self) -> None:
        self.chunks.close()
        self.export.close()
