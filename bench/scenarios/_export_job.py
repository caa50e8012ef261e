"""The Django-side part of `bench/run.py export`: a set-up job of the harness
(bench/harness/child.py runs it in the measured tree's interpreter, Django set up with
benchsite.settings on the database given).

- `copy_statement`: the `COPY (...) TO STDOUT` statement an export of `rows/` with the
  query string given runs for an unrestricted reader (datalake/query/export.py), its
  parameters bound, and the number of rows it gives.
"""

from __future__ import annotations


def copy_statement(query: str, resource: str = "transactions") -> dict:
    import psycopg
    from django.db import connection
    from django.http import QueryDict

    from datalake.catalog import get_entry
    from datalake.query.export import Export
    from datalake.query.grammar import parse_row_query

    export = Export(parse_row_query(get_entry(resource), QueryDict(query)))
    try:
        sql, params, _names = export.copy_statement()
    finally:
        export.close()
    connection.ensure_connection()
    bound = psycopg.ClientCursor(connection.connection).mogrify(sql, params)
    select = bound.removeprefix("COPY (").removesuffix(") TO STDOUT (FORMAT csv)")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({select}) q")
        rows = cursor.fetchone()[0]
    return {"statement": bound, "rows": rows}
