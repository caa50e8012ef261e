"""Column masks and row filters carried by `read` grants, and how they combine.

A `read` grant may carry:
- `columns`: the only columns its holder sees (null: all);
- `row_filter`: `{column: [allowed values]}`, every column's condition must hold
  (null: every row);
- `masked`: columns shown as a stable pseudonym instead of their value.

Several live `read` grants of one user on one resource (direct and through groups)
combine as a union, the most permissive of each: all rows if one grant has no row
filter (else the rows any filter allows), all columns if one grant has no column
list (else every column any grant lists), and a column is masked only if every
grant that shows it masks it.

A hidden or masked column cannot be filtered or ordered on (403 naming it): a
filter on a masked column would let its real values be guessed one by one. Where the
key (the tie-breaker of every order) is hidden or masked, rows are ordered by its
keyed hash instead (`masking.order_hash`), so their rank says nothing of its values.
A masked reader cannot write the resource (`Access.require_unmasked_writer`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from accounts.access.masking import pseudonym
from datalake.errors import AccessDenied

META = frozenset({"_file", "_line"})  # where a raw record is: never hidden


@dataclass(frozen=True)
class Restriction:
    """What a user may see of one resource. `columns`/`rows` None: no limit.

    `resource` keys the pseudonyms: each resource and column masks with its own key.
    """

    columns: frozenset[str] | None = None
    rows: tuple[dict[str, tuple], ...] | None = None
    masked: frozenset[str] = frozenset()
    resource: str = ""

    @property
    def restricted(self) -> bool:
        return self.columns is not None or self.rows is not None or bool(self.masked)

    def hides(self, name: str) -> bool:
        """A column outside the grant's list (a raw file's `_file`/`_line` never are)."""
        return self.columns is not None and name not in self.columns and name not in META

    def visible(self, names) -> list[str]:
        return [n for n in names if not self.hides(n)]

    def refuse_hidden(self, names, what: str, *, masked_too: bool = True) -> None:
        """403 naming the columns of `names` the user may not see (or use, if masked)."""
        hidden = [n for n in names if self.hides(n)]
        blocked = hidden + ([n for n in names if n in self.masked] if masked_too else [])
        if blocked:
            shown = ", ".join(sorted(set(blocked)))
            raise AccessDenied(
                f"Your grant does not let you {what} column(s): {shown}.", code="column_hidden"
            )

    def describe(self) -> dict:
        """For the request log and the catalog: the restriction in plain JSON."""
        return {
            "columns": sorted(self.columns) if self.columns is not None else None,
            "row_filter": [{k: list(v) for k, v in f.items()} for f in self.rows]
            if self.rows is not None
            else None,
            "masked": sorted(self.masked),
        }

    def fingerprint(self, keyed: bool = True) -> str:
        """Names what this restriction shows, for files written once per restriction
        (`datalake.sharing`): two users with the same restriction share them. Bound to
        the masking key in use when it masks (a rotated key writes new files), unless
        `keyed` is false (a cursor: the key's rotation keeps the walks going)."""
        if not self.restricted:
            return "all"
        import hashlib
        import json

        from accounts.access.masking import key_fingerprint

        described = {**self.describe(), "resource": self.resource}
        if self.rows is not None:  # the same rows whatever the order of grants and values
            filters = {
                json.dumps({k: sorted(set(v), key=repr) for k, v in f.items()}, sort_keys=True)
                for f in self.rows
            }
            described["row_filter"] = sorted(filters)
        if self.masked and keyed:
            described["key"] = key_fingerprint()
        text = json.dumps(described, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def apply_to_arrow(self, table):
        """`table` (a pyarrow Table of the resource's columns) as this restriction shows
        it: rows outside the row filters dropped, hidden columns dropped, masked columns
        replaced by the same pseudonyms as `mask_rows` (`mask_arrow`)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.rows is not None:
            keep = None
            for conditions in self.rows:
                every = None
                for name, values in conditions.items():
                    column = table[name]
                    allowed = pa.array(list(values), type=column.type)
                    test = pc.is_in(column, value_set=allowed)
                    every = test if every is None else pc.and_(every, test)
                keep = every if keep is None else pc.or_(keep, every)
            table = table.filter(keep) if keep is not None else table.slice(0, 0)
        return self.mask_arrow(table.select(self.visible(table.column_names)))

    def mask_arrow(self, table):
        """`table` with the masked columns it holds replaced by the pseudonyms of
        `mask_rows` (each distinct value hashed once)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        for name in sorted(self.masked):
            if name not in table.column_names:
                continue
            column = table[name].combine_chunks()
            if pa.types.is_nested(column.type):  # an array: no dictionary encoding of lists
                values = column.to_pylist()
                masked = pa.array([pseudonym(self.resource, name, v) for v in values], pa.string())
            else:
                encoded = pc.dictionary_encode(column)
                names = [pseudonym(self.resource, name, v) for v in encoded.dictionary.to_pylist()]
                masked = pa.array(names, type=pa.string()).take(encoded.indices)
            table = table.set_column(table.column_names.index(name), name, masked)
        return table

    def mask_rows(self, rows: list[dict]) -> list[dict]:
        """Pseudonyms in place of the masked columns' values (in place)."""
        names = [n for n in self.masked if rows and n in rows[0]]
        for row in rows if names else ():
            for name in names:
                row[name] = pseudonym(self.resource, name, row[name])
        return rows


UNRESTRICTED = Restriction()


def combine(grants) -> Restriction:
    """The union of the restrictions of `grants` (at least one)."""
    columns: set[str] | None = set()
    rows: list[dict] | None = []
    for grant in grants:
        if grant.columns is None:
            columns = None
        elif columns is not None:
            columns |= set(grant.columns)
        if grant.row_filter is None:
            rows = None
        elif rows is not None:
            rows.append({k: tuple(v) for k, v in sorted(grant.row_filter.items())})

    def shown_clear(grant, name: str) -> bool:
        shown = grant.columns is None or name in grant.columns
        return shown and name not in (grant.masked or ())

    candidates = {name for grant in grants for name in grant.masked or ()}
    masked = {n for n in candidates if not any(shown_clear(g, n) for g in grants)}
    return Restriction(
        frozenset(columns) if columns is not None else None,
        tuple(rows) if rows is not None else None,
        frozenset(masked),
    )


def restriction_for(user, resource: str, request=None) -> Restriction:
    """The user's read restriction on `resource` (staff: none), once per request."""
    if user.is_staff:
        return UNRESTRICTED
    cache = getattr(request, "_restrictions", None) if request is not None else None
    if cache is not None and resource in cache:
        return cache[resource]
    from accounts.access.grants import read_grants

    grants = read_grants(user, resource)
    found = replace(combine(grants), resource=resource) if grants else UNRESTRICTED
    if request is not None:
        if cache is None:
            cache = request._restrictions = {}
        cache[resource] = found
        if found.restricted:
            from lineage.audit import note_restriction

            note_restriction(request, resource, found.describe())
    return found


FILTERABLE_TYPES = {"string": str, "integer": int, "boolean": bool}


def validate_restriction(grant) -> None:
    """Django ValidationError (admin and API) unless the restriction fits the resource.

    Reads the catalog only (`datalake.catalog.get_entry`, which writes nothing): the
    model's `clean()` calls it, and validating writes nothing to the database."""
    from django.core.exceptions import ValidationError

    from datalake.catalog import get_entry

    if grant.resource_id is None or not grant.restricted:
        return
    errors: dict[str, list[str]] = {}
    if grant.privilege != "read":
        raise ValidationError({"privilege": ["Only a `read` grant can carry columns, "
                                             "row_filter or masked."]})  # fmt: skip
    entry = get_entry(grant.resource.name)
    known = set(entry.column_names) if entry else set()

    def names(value, field: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.setdefault(field, []).append("A list of column names.")
            return []
        unknown = sorted(set(value) - known)
        if unknown:
            errors.setdefault(field, []).append(f"Unknown column(s): {', '.join(unknown)}.")
        return value

    if grant.columns is not None and not names(grant.columns, "columns"):
        errors.setdefault("columns", []).append("Give at least one column (or null for all).")
    names(grant.masked, "masked")
    if grant.row_filter is not None:
        if not isinstance(grant.row_filter, dict) or not grant.row_filter:
            errors.setdefault("row_filter", []).append(
                'An object of column: [allowed values], e.g. {"country": ["FR"]}.'
            )
        else:
            for name, values in grant.row_filter.items():
                column = entry.column(name) if entry else None
                kind = FILTERABLE_TYPES.get(column.type) if column else None
                if column is None:
                    errors.setdefault("row_filter", []).append(f"Unknown column: {name}.")
                elif kind is None:
                    errors.setdefault("row_filter", []).append(
                        f"{name} is a {column.type} column; rows are filtered on string, "
                        "integer or boolean columns."
                    )
                elif (
                    not isinstance(values, list)
                    or not values
                    or not all(type(v) is kind for v in values)
                ):
                    errors.setdefault("row_filter", []).append(
                        f"{name}: a non-empty list of {column.type} values."
                    )
    if errors:
        raise ValidationError(errors)
