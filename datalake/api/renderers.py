"""JSON rendering with orjson (the serialisation of rows is the cost of a page), and the
CSV and Arrow streams of `rows/` exports."""

import csv
import io
from decimal import Decimal

import orjson
from rest_framework.renderers import BaseRenderer, JSONRenderer

from datalake.platform.csvsafe import safe_column, safe_row

OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def _default(value):
    if isinstance(value, Decimal):
        return str(value)
    return str(value)  # lazy translations, ErrorDetail subclasses and the like


def dumps(data, indent: bool = False) -> bytes:
    return orjson.dumps(data, default=_default, option=OPTIONS | (orjson.OPT_INDENT_2 * indent))


class FastJSONRenderer(JSONRenderer):
    """DRF's JSON renderer, through orjson (timestamps as `...Z`, decimals as strings)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        indent = bool(self.get_indent(accepted_media_type, renderer_context or {}))
        return dumps(data, indent)


class _Chunks:
    """A write-only file whose writes are taken back as one bytes chunk (`drain`)."""

    def __init__(self):
        self.parts: list = []
        self.closed = False

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


class ExportRenderer(BaseRenderer):
    """A `rows/` export (datalake/query/export.py): the view streams `stream(export)`.

    Never renders a Response: an error answer is negotiated back to JSON by the view.
    """

    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        raise TypeError("An export is streamed by its view, not rendered.")


class ArrowRenderer(ExportRenderer):
    """An Arrow IPC stream: the schema, then one record batch per streamed batch."""

    media_type = "application/vnd.apache.arrow.stream"
    format = "arrow"
    extension = "arrows"

    def stream(self, export):
        import pyarrow as pa

        sink = _Chunks()
        with pa.ipc.new_stream(sink, export.schema) as writer:
            yield sink.drain()
            for batch in export.batches():
                writer.write_batch(batch)
                yield sink.drain()
        yield sink.drain()  # the end-of-stream marker: its absence says "truncated"


class CSVRenderer(ExportRenderer):
    """CSV with a header, UTF-8; arrays as JSON text, formula-like text made inert
    (`csvsafe`, as the report files); NULL an empty field, an empty text `""`."""

    media_type = "text/csv"
    format = "csv"
    extension = "csv"

    def stream(self, export):
        import pyarrow as pa
        import pyarrow.csv as pacsv

        names = export.schema.names
        yield _csv_header(names)
        options = pacsv.WriteOptions(include_header=False)
        for batch in export.batches():
            columns = [_csv_column(batch.column(i)) for i in range(batch.num_columns)]
            sink = pa.BufferOutputStream()
            pacsv.write_csv(pa.RecordBatch.from_arrays(columns, names), sink, options)
            yield sink.getvalue().to_pybytes()


def _csv_header(names) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(safe_row(names))
    return out.getvalue().encode()


def _csv_column(column):
    """A column as CSV shows it: arrays as JSON, UTC timestamps as ISO 8601 text with `Z`
    (pyarrow's own writer converts each zoned timestamp through the time-zone database,
    ten times slower), text made formula-safe."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_list(column.type):
        column = pa.array([None if v is None else orjson.dumps(v).decode()
                           for v in column.to_pylist()], pa.string())  # fmt: skip
    if pa.types.is_timestamp(column.type) and column.type.tz == "UTC":
        text = column.cast(pa.timestamp(column.type.unit)).cast(pa.string())  # UTC's clock
        text = pc.replace_substring(text, " ", "T", max_replacements=1)
        return pc.binary_join_element_wise(text, "Z", "")
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return safe_column(column)
    return column
