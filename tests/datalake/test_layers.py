"""Lint tests of the layers: which modules may know of what.

1. HTTP is the API layer's business. Services, selectors, the query engine, the lake,
   tasks and commands raise the domain errors of `datalake.errors`; the API layer
   (`datalake.api.errors.exception_handler`) maps them to statuses. Only the API layer
   imports `rest_framework` (or the HTTP error classes of `datalake.api.errors`).
2. The lake (`datalake/lake/`) is the bottom of the data flow: what other apps keep in
   step with a merge they register as hooks (`datalake.lake.hooks`), so the lake
   imports nothing of `metrics`, `ingestion` or the request log's API.

Imports are read from the source (every `import`, at the top or inside a function), so
a lazy import counts as much as a top-level one.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("datalake", "accounts", "ingestion", "metrics", "lineage")

# The API layer: HTTP in, HTTP out. DRF views, serializers, permissions, URL
# configurations, pagination, renderers, parsers, filters and authentication.
API_LAYER = (
    "*/api/*",
    "*views.py",
    "*serializers.py",
    "*/urls.py",
    "*/filters.py",
    "accounts/access/permissions.py",  # ResourcePrivilege: a DRF permission over Access
    "accounts/authentication.py",  # the DRF token authentication
)

# Report and model types declare their parameters as DRF serializers: the one validation
# language of the API and of the tasks that validate stored parameters again. They may
# import `rest_framework.serializers`, nothing else of DRF.
PARAMETER_SCHEMAS = (
    "metrics/reports/base.py",
    "metrics/reports/builtin.py",
    "metrics/reports/schema.py",
    "metrics/ml/registry.py",
    "metrics/ml/product_demand.py",
)

LAKE = "datalake/lake/*"
NOT_IN_THE_LAKE = ("metrics", "ingestion", "lineage.api")


def _modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path


def _imports(path: Path) -> set[str]:
    """Every module and `module.name` the file imports (absolute imports only: TID252)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _in(relative: str, patterns) -> bool:
    return any(fnmatch(relative, pattern) for pattern in patterns)


def _http_imports(relative: str, path: Path) -> set[str]:
    """What the file imports of DRF and of the API's HTTP errors, minus what it may."""
    names = {
        n for n in _imports(path) if _under(n, "rest_framework") or _under(n, "datalake.api.errors")
    }
    if relative in PARAMETER_SCHEMAS:
        names -= {"rest_framework", "rest_framework.serializers"}
    return names


def test_only_the_api_layer_imports_drf():
    offenders = {
        relative: sorted(names)
        for relative, path in _modules()
        if not _in(relative, API_LAYER) and (names := _http_imports(relative, path))
    }
    assert not offenders, (
        "Outside the API layer, raise datalake.errors (NotFound, AccessDenied, Invalid, "
        f"Conflict, TooManyJobs, Unavailable) and leave HTTP to datalake.api: {offenders}"
    )


def test_the_allowances_name_modules_that_exist():
    listed = [*PARAMETER_SCHEMAS]
    assert [name for name in listed if not (ROOT / name).is_file()] == []


def test_the_lake_imports_no_app_above_it():
    offenders = {
        relative: sorted(n for n in _imports(path) if any(_under(n, p) for p in NOT_IN_THE_LAKE))
        for relative, path in _modules()
        if fnmatch(relative, LAKE)
    }
    offenders = {name: found for name, found in offenders.items() if found}
    assert not offenders, (
        "datalake/lake/ is below the apps: register a hook (datalake.lake.hooks) in the "
        f"app's AppConfig.ready() instead of importing it: {offenders}"
    )
    assert any(fnmatch(relative, LAKE) for relative, _path in _modules())  # the walk found it


def test_the_apps_register_their_merge_hooks_and_followers():
    """The search index and the metrics aggregates follow committed versions (followers);
    a file's merge keeps its lines and unversioned tables are indexed through the hooks."""
    from datalake.lake import followers, hooks
    from datalake.search import index
    from metrics import aggregates

    assert index.keep_lines in hooks.WRITTEN
    assert index.after_replace in hooks.REPLACED
    assert followers.after_merge in hooks.MERGED
    assert followers.REGISTRY["metrics"].apply is aggregates.apply_batch
    assert followers.REGISTRY["search"].apply is index.apply_batch
    assert set(followers.REGISTRY["search"].resources()) >= {"transactions", "sales"}
