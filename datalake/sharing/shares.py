"""The share, its schemas and tables, and what a protocol call reads.

One share, `lake`. Its schemas are the resource kinds: `tables` (PostgreSQL tables)
and `files` (raw folders). A schema's tables are the resources of its kind the
recipient may `read`; a table of another kind, or one it may not read, is not there
(403 naming it, as in the rest of the API: the request log and the table's access
log record the refusal too).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.utils.dateparse import parse_date, parse_datetime

from accounts.access import Access, Restriction
from datalake.catalog import Entry, get_entry
from datalake.errors import Conflict, Invalid, NotFound, TooManyJobs
from datalake.models import Resource
from datalake.query.bounds import check_instant
from datalake.sharing import changes, links, snapshots
from datalake.sharing.schema import schema_string, shared_schema
from lineage.models import Version

SHARE = "lake"
SCHEMAS = {"tables": "table", "files": "files"}  # schema name -> resource kind
NAMESPACE = uuid.UUID("6f1c3a52-8f3e-4d6b-9a51-2d0c9a1b7e40")


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def require_share(share: str) -> None:
    if share != SHARE:
        raise NotFound(f"No share {share!r}: this portal shares one, {SHARE!r}.")


def require_schema(share: str, schema: str) -> str:
    require_share(share)
    if schema not in SCHEMAS:
        raise NotFound(f"No schema {schema!r} in {SHARE!r}: {', '.join(SCHEMAS)}.")
    return SCHEMAS[schema]


def shared_tables(access: Access, share: str, schema: str | None = None) -> list[dict]:
    """The tables of the share (or of one schema) the recipient may read, by name."""
    require_share(share)
    kinds = [require_schema(share, schema)] if schema is not None else list(SCHEMAS.values())
    schema_of = {kind: name for name, kind in SCHEMAS.items()}
    readable = access.resources_with("read")
    found = Resource.objects.filter(kind__in=kinds).order_by("name")
    if readable is not None:
        found = found.filter(name__in=readable)
    return [
        {
            "name": r.name,
            "schema": schema_of[r.kind],
            "share": SHARE,
            "shareId": stable_id(SHARE),
            "id": stable_id(SHARE, r.name),
        }
        for r in found.only("name", "kind")
    ]


@dataclass
class SharedTable:
    """One table a recipient asked for, after the access check."""

    entry: Entry
    resource: Resource
    restriction: Restriction
    user_id: int
    token_id: int | None = None  # the API token of the call: the file URLs die with it

    @property
    def version(self) -> int:
        return self.resource.current_version

    def metadata(self, version: int | None = None) -> dict:
        """The `metaData` line; `version`: the version a query reads (default: now)."""
        schema = shared_schema(self.entry, self.restriction)
        descriptions = {c.name: c.description for c in self.entry.columns}
        configuration = {"enableChangeDataFeed": "true"} if self.entry.versioning else {}
        return {
            "metaData": {
                "id": stable_id(SHARE, self.entry.name),
                "name": self.entry.name,
                "description": self.entry.description,
                "format": {"provider": "parquet"},
                "schemaString": schema_string(schema, descriptions),
                "partitionColumns": [],
                "configuration": configuration,
                "version": self.version if version is None else version,
            }
        }

    # -- versions --------------------------------------------------------------------
    def _versioned(self, what: str) -> None:
        if not self.entry.versioning:
            raise Conflict(
                f"{self.entry.name!r} is not versioned: only its current state is shared, "
                f"so {what} is not available.",
                code="versioning_disabled",
            )

    def _versions(self):
        return Version.objects.filter(resource=self.resource)

    def version_at(self, when: datetime) -> int:
        """The table's version at `when`: the last one made at or before it."""
        return self._version_near(when, before=True)

    def version_since(self, when: datetime) -> int:
        """The first version made at or after `when` (the protocol's startingTimestamp)."""
        return self._version_near(when, before=False)

    def _version_near(self, when: datetime, *, before: bool) -> int:
        self._versioned("time travel")
        versions = self._versions()
        if before:
            found = versions.filter(created_at__lte=when).order_by("-version").first()
        else:
            found = versions.filter(created_at__gte=when).order_by("version").first()
        if found is None:
            side, code = (
                ("before", "timestamp_too_early") if before else ("after", "timestamp_too_late")
            )
            raise Invalid(
                f"{self.entry.name!r} has no version at or {side} {when.isoformat()}.", code=code
            )
        return found.version

    def check_version(self, version: int) -> int:
        self._versioned("time travel")
        if not self._versions().filter(version=version).exists():
            raise NotFound(f"{self.entry.name!r} has no version {version}.")
        return version

    # -- files -----------------------------------------------------------------------
    def query(
        self, url: Callable[[str], str], version: int | None = None, limit: int | None = None
    ) -> tuple[int, list]:
        """(version read, the `file` lines of the snapshot at `version` or now). With a
        `limit` hint, only the first files that hold that many rows (their counts are
        known: a cheap hint to honour)."""
        at = self.version if version is None else version
        state = snapshots.state_of(self.entry, at if self.entry.versioning else None)
        if at != self.version:
            self._room_for_the_past(state)
            snapshots.mark_past(self.entry, state)
        found = snapshots.snapshot(self.entry, state, self.restriction, at)
        snapshots.touch(found)
        lines = []
        rows = 0
        for shared in found.files:
            if limit is not None and rows >= limit and lines:
                break
            rows += shared.rows
            relative = f"{found.relative}/{shared.name}"
            token, expires = links.sign(self.user_id, relative, self.token_id)
            lines.append(
                {
                    "file": {
                        "url": url(token),
                        "id": shared.id(found),
                        "partitionValues": {},
                        "size": shared.size,
                        "stats": f'{{"numRecords":{shared.rows}}}',
                        "expirationTimestamp": expires,
                    }
                }
            )
        return at, lines

    def _room_for_the_past(self, state: str) -> None:
        """429 before writing the files of yet another past version while
        SHARING_MAX_PAST_VERSIONS of this table's past versions are being read: each
        may be a copy of the table on disk until its URLs expire."""
        live = snapshots.live_past_states(self.entry.name) - {f"v{self.version}"}
        if state not in live and len(live) >= settings.SHARING_MAX_PAST_VERSIONS:
            raise TooManyJobs(
                f"{len(live)} past versions of {self.entry.name!r} are being read, as many "
                "as are kept at once; retry when their URLs have expired "
                f"(SHARING_URL_LIFETIME_SECONDS), or read one of them.",
                code="too_many_past_versions",
            )

    def changes(self, url: Callable[[str], str], start: int, end: int | None) -> list:
        """The `cdf` lines of versions start..end (end: the current one)."""
        self._versioned("the change feed")
        end = self.version if end is None else end
        if start < 1 or start > self.version:
            raise Invalid(
                f"startingVersion must be between 1 and {self.version}, the current version.",
                code="invalid_version",
            )
        if end < start or end > self.version:
            raise Invalid(
                f"endingVersion must be between startingVersion and {self.version}.",
                code="invalid_version",
            )
        made = list(
            self._versions().filter(version__gte=start, version__lte=end).order_by("version")
        )
        most = settings.SHARING_MAX_CHANGE_VERSIONS
        if len(made) > most:  # each version's files are a COPY: a bounded number a call
            raise Invalid(
                f"{len(made)} versions asked; the change feed gives at most {most} a call: "
                f"endingVersion={made[most - 1].version}, then start after it.",
                code="too_many_versions",
            )
        lines = []
        for version in made:
            found = changes.change_files(self.entry, version.version, self.restriction)
            snapshots.touch(found)
            stamp = int(version.created_at.timestamp() * 1000)
            for shared in found.files:
                if not shared.rows:
                    continue
                token, expires = links.sign(
                    self.user_id, f"{found.relative}/{shared.name}", self.token_id
                )
                lines.append(
                    {
                        "cdf": {
                            "url": url(token),
                            "id": shared.id(found),
                            "partitionValues": {},
                            "size": shared.size,
                            "version": version.version,
                            "timestamp": stamp,
                            "expirationTimestamp": expires,
                        }
                    }
                )
        return lines


def shared_table(access: Access, share: str, schema: str, table: str) -> SharedTable:
    """The table a protocol call names, once the recipient may read it."""
    kind = require_schema(share, schema)
    access.require("read", table)
    entry = get_entry(table)
    resource = Resource.objects.filter(name=table).first()
    if entry is None or resource is None or resource.kind != kind:
        raise NotFound(f"No table {table!r} in {share}.{schema}.")
    token = getattr(access.request, "auth", None)
    token_id = getattr(token, "pk", None)
    return SharedTable(entry, resource, access.restriction(table), access.user.pk, token_id)


def parse_timestamp(value: str, name: str) -> datetime:
    """An ISO 8601 timestamp (`2026-12-01T00:00:00Z`); a date is its midnight UTC."""
    parsed = None
    printable = isinstance(value, str) and value.isprintable()
    if printable and len(value) <= 64:
        try:
            parsed = parse_datetime(value)
            if parsed is None and len(value) == 10 and (day := parse_date(value)):
                parsed = datetime(day.year, day.month, day.day)
        except ValueError:  # well formed, not a day of the calendar (2026-02-30)
            parsed = None
    if parsed is None:
        raise Invalid({name: ["An ISO 8601 timestamp, e.g. 2026-12-01T00:00:00Z."]})
    try:
        return check_instant(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    except ValueError as error:
        raise Invalid({name: [str(error)]}) from None
