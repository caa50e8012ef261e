"""One page of rows for the `rows/` endpoints: page numbers or a keyset cursor.

What a page holds (`RowsPage`); the API layer adds the `next`/`previous` links
(`datalake.api.pagination.rows_body`).
"""

from __future__ import annotations

from dataclasses import dataclass

from datalake.errors import NotFound
from datalake.query import snapshots
from datalake.query.backends import backend_for
from datalake.query.compiled import ShapeCache
from datalake.query.grammar import RowQuery
from datalake.query.keyset import after_condition, leading_bound, typed_cursor
from datalake.query.snapshots import DataVersion


@dataclass
class RowsPage:
    """One page of a `RowQuery`: the rows, the count, where the next page starts and
    the state of the data they were read from."""

    count: int
    count_is_estimate: bool
    next_cursor: str | None  # None on the last page
    results: list[dict]
    state: DataVersion


def rows_page(query: RowQuery, state: DataVersion, files: frozenset | None = None) -> RowsPage:
    """One page of `query` over the data in `state` (`datalake.query.snapshots`).

    The latest version, or the state the caller read just before (page 1), is read
    through the current rows and their partial indexes, then checked: nothing may have
    landed meanwhile. If something did, a versioned table's page is read again at its
    version, as history, so the page, its cursor and its ETag all name one state; a
    walk's page over data that keeps no past states (a table without versions) is a
    410 rather than a page of the new data. A version no longer the latest is read as
    history at once. `files`: a folder walk's files.
    """
    page, starts = _page(query, state, files)
    walking = query.cursor is not None
    confirmed = (state.pinned and not state.latest) or query.entry.kind != "table"
    for _attempt in range(2):
        if confirmed:
            break
        now = snapshots.current(query.entry, fresh=True)  # not what rode on the token
        confirmed = page.state.same_state(now)
        if confirmed:
            break
        if state.kind == "version" and state.pinned:  # no longer the latest: history
            page, starts = _page(query, snapshots.moved(state), files)
            confirmed = True
            break
        at_start = snapshots.at_version(query.entry, state.version) if state.version else None
        if at_start is None and walking:
            raise snapshots.expired(query.entry, "the data changed while the page was read")
        page, starts = _page(query, snapshots.moved(at_start) if at_start else now, files)
        state = page.state
        confirmed = state.pinned
    if starts and confirmed:
        starts.commit()
    return page


def _page(query, state, files):
    """A cursor page costs one index range scan at any depth; `page=N` is an OFFSET
    (fine for the first thousands of pages), except where the start of page N is
    known (`PageStarts`). A page past the end is a 404."""
    history = state.pinned and not state.latest
    backend = backend_for(query, state.version if history else None, files, state)
    read = backend.state(state)
    if query.cursor is not None and not read.same_state(state):  # a folder changed since
        raise snapshots.expired(query.entry, "the folder changed while the page was read")
    state = read
    names = query.ordering_names
    select = query.fields + [n for n in names if n not in query.fields]
    starts = (
        PageStarts(backend, query, state)
        if query.cursor is None and query.page > 1 and state.ident is not None
        else None
    )
    values = (
        query.cursor if query.cursor is not None else starts.get(query.page) if starts else None
    )
    after = bound = None
    if values is not None:
        typed = typed_cursor(query, query.ordering, values) if query.cursor else values
        after = after_condition(query, query.ordering, typed)
        bound = leading_bound(query, query.ordering, typed)
    offset = 0 if after is not None else (query.page - 1) * query.page_size
    lead = 1 if starts and after is None else 0  # the row before the page: where it starts
    rows = backend.fetch(select, offset - lead, query.page_size + 1 + lead, after, bound)
    if lead and rows:
        before = rows.pop(0)
        starts.remember(query.page, [before[n] for n in names])
    has_next = len(rows) > query.page_size
    rows = rows[: query.page_size]
    if not rows and query.page > 1:
        raise NotFound(f"Page {query.page} is past the end of the results.")
    last = [rows[-1][n] for n in names] if has_next else None
    if starts and last:
        starts.remember(query.page + 1, last)
    next_cursor = query.encode_cursor(last, state.sealed()) if has_next else None
    extra = [n for n in select if n not in query.fields]
    for row in rows if extra else ():
        for name in extra:
            del row[name]
    query.restriction.mask_rows(rows)
    count, estimated = backend.count()
    return RowsPage(count, estimated, next_cursor, rows, state), starts


class PageStarts:
    """Where the pages of one query over one version of a table start.

    `page=N` is an OFFSET: PostgreSQL walks (N-1) x size rows to skip them. Serving
    page N also shows where page N+1 starts (after its last row) and, fetching one
    row more in front, where page N itself starts; the next request for either is a
    keyset page after those values, like a cursor. The starts are kept per process,
    per query (filters, grant row filters, ordering, page size) and per version of
    the table: a table changes only by a merge, and a merge makes a new version, so a
    start found for a version stays right for it. Tables without versions keep none.
    """

    known = ShapeCache(size=20_000)

    def __init__(self, backend, query: RowQuery, state: DataVersion):
        self.key = (backend.query_key(), query.page_size, tuple(state.sealed()))
        self.found: dict[int, list] = {}

    def get(self, page: int):
        found = self.known.get((self.key, page))
        return None if found is KeyError else found

    def remember(self, page: int, values: list) -> None:
        if self.get(page) != values:
            self.found[page] = values

    def commit(self) -> None:
        """Keep what this request found (`rows_page` checked no merge made a version
        meanwhile)."""
        for page, values in self.found.items():
            self.known.put((self.key, page), values)
