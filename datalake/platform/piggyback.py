"""Small reads that ride on the request's token lookup: one database round trip, not two.

Every token-authenticated request runs one statement first, the token lookup
(accounts/authentication.py, which already reads the caller's live grants in it). A
view that knows before authentication which small row it will read first (the current
version of the resource named in its URL, for `rows/` and `versions/`) asks for it
here (`ask`); the token lookup adds each question as a column of its statement and
hands the answers back (`answer`); the code that would have queried takes the answer
(`take`) instead of running its own statement.

- Nothing outlives the request: questions and answers live in a `scope` (opened for
  each request by `accounts.middleware.GrantScopeMiddleware`). Outside one (Celery,
  the shell, code called without a request) `ask` does nothing and every read queries.
- An answer is taken once: the same read asked again in the request (a page's check
  that no version landed while it was read) queries the database, as it must.
- A question nobody answers (session authentication, anonymous callers) costs nothing:
  its reader finds no answer and queries.
- What rides is read before the permission check and never shown by itself: a denied
  request drops it with its scope.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_requests: ContextVar[dict | None] = ContextVar("piggyback", default=None)
_MISSING = object()


@contextmanager
def scope() -> Iterator[None]:
    token = _requests.set({"asked": {}, "answers": {}})
    try:
        yield
    finally:
        _requests.reset(token)


def ask(key: Hashable, sql: str, params: list) -> None:
    """Ask for one value, `sql` being a scalar sub-select (in parentheses) of `params`."""
    state = _requests.get()
    if state is not None:
        state["asked"][key] = (sql, list(params))


def questions() -> list[tuple[Hashable, str, list]]:
    """The questions asked and not yet taken up by a statement (then forgotten)."""
    state = _requests.get()
    if state is None or not state["asked"]:
        return []
    asked, state["asked"] = state["asked"], {}
    return [(key, sql, params) for key, (sql, params) in asked.items()]


def answer(key: Hashable, value) -> None:
    state = _requests.get()
    if state is not None:
        state["answers"][key] = value


def take(key: Hashable):
    """The answer to `key` (once), or `MISSING` when there is none to take."""
    state = _requests.get()
    if state is None:
        return _MISSING
    return state["answers"].pop(key, _MISSING)


MISSING = _MISSING
