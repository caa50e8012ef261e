"""How fresh an answer derived by a follower is, and `?min_version=`: wait for it.

Reads of derived data (metrics from the aggregates, search from its entries) answer at
their follower's position (datalake.lake.followers) and say so: `as_of_version` and
`lag_seconds` in the body, `X-Data-Version` and `X-Lag-Seconds` in the headers. A
client that has just caused a version (a re-push, an ingestion) may ask for it with
`?min_version=N`: the answer waits until the follower has derived it, at most
FOLLOWER_WAIT_SECONDS, then is a 503 `not_derived_yet` with `Retry-After`. Only a
committed version is waited for: one above the resource's current version does not
exist yet, and is a 409 `version_ahead` at once (no request holds a worker waiting for
a version that may never come).
"""

from __future__ import annotations

from rest_framework import serializers

from datalake.api.bounds import WholeNumberField
from datalake.errors import Conflict, Unavailable
from datalake.lake import followers
from datalake.platform import replicas

MIN_VERSION_HELP = (
    "Answer only once this version of the data is included (waits up to "
    "FOLLOWER_WAIT_SECONDS, 5 s by default, then 503 `not_derived_yet` with Retry-After)."
)


class FreshnessParams(serializers.Serializer):
    min_version = WholeNumberField(required=False, min_value=0, help_text=MIN_VERSION_HELP)


def require(follower: str, resource: str, min_version: int | None) -> followers.State:
    """The follower's state, once it has derived `min_version` (if given)."""
    if min_version is not None:
        now = followers.state(follower, resource)
        if now.derived_through_version < min_version and not replicas.on_primary():
            # A replica not there yet: the primary answers (and waits, if it must).
            raise replicas.Behind(f"{resource} version {min_version}")
        if min_version > now.current_version:
            raise Conflict(
                f"Version {min_version} of {resource} does not exist yet (its current "
                f"version is {now.current_version}).",
                code="version_ahead",
                extra={"min_version": min_version, "current_version": now.current_version},
            )
    try:
        return followers.wait_for(follower, resource, min_version)
    except followers.NotDerivedYet as behind:
        state = behind.state
        raise Unavailable(
            f"The {follower} follower has derived {resource} through version "
            f"{state.derived_through_version}, not yet {behind.wanted}; retry shortly.",
            code="not_derived_yet",
            extra={
                "min_version": behind.wanted,
                "as_of_version": state.derived_through_version,
                "current_version": state.current_version,
                "lag_seconds": round(state.lag_seconds, 3),
            },
            retry_after=1,
        ) from None


def body(state: followers.State) -> dict:
    return {
        "as_of_version": state.derived_through_version,
        "lag_seconds": round(state.lag_seconds, 3),
    }


def headers(response, state: followers.State):
    response["X-Data-Version"] = str(state.derived_through_version)
    response["X-Lag-Seconds"] = f"{state.lag_seconds:.3f}"
    return response
