"""OpenAPI examples of the accounts API."""

from drf_spectacular.utils import OpenApiExample

TOKEN = [
    OpenApiExample(
        "Credentials", value={"username": "alice", "password": "s3cret-pw"}, request_only=True
    ),
    OpenApiExample(
        "Token",
        value={
            "token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
            "expires_at": "2026-12-23T10:00:00Z",
        },
        response_only=True,
    ),
]

TOKEN_LIST = [
    OpenApiExample(
        "Tokens",
        value={
            "count": 1,
            "next": None,
            "previous": None,
            "results": [
                {
                    "id": 3,
                    "user": "alice",
                    "prefix": "9944b091",
                    "created_at": "2026-11-23T10:00:00Z",
                    "expires_at": "2026-12-23T10:00:00Z",
                    "last_used_at": "2026-11-23T10:05:00Z",
                }
            ],
        },
        response_only=True,
    )
]

GRANT_EXAMPLE = OpenApiExample(
    "A grant",
    value={
        "id": 12,
        "url": "http://localhost:8000/api/v1/grants/12/",
        "user": "alice",
        "group": None,
        "resource": "transactions",
        "privilege": "read",
        "granted_by": "admin",
        "created_at": "2026-11-23T10:00:00Z",
        "expires_at": None,
    },
    response_only=True,
)

GRANT_LIST = [
    OpenApiExample(
        "Grants",
        value={"count": 1, "next": None, "previous": None, "results": [GRANT_EXAMPLE.value]},
        response_only=True,
    )
]

GRANT_CREATE = [
    OpenApiExample(
        "Read on transactions for alice until the end of the year",
        value={
            "user": "alice",
            "resource": "transactions",
            "privilege": "read",
            "expires_at": "2026-12-31T23:59:59Z",
        },
        request_only=True,
    ),
    GRANT_EXAMPLE,
]
