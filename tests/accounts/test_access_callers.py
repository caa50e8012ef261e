"""Every caller asks the access layer through its public API (a lint over the source).

Outside `accounts/access/`, a module imports only `accounts.access` (the `Access`
object, the registry of data paths...) and the package's public modules; it never
imports `accounts.access.grants` (the live-grant queries) nor calls the layer's
internals (`restriction_for`, `has_privilege`, ...), and it never names the resource
of the request log itself (`note_resource`): `Access` does, when it is asked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import accounts.access

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "datalake", "ingestion", "metrics", "lineage", "bench", "scripts")
PACKAGE = "accounts.access"
# Public modules of the package, and the names each may give away (None: all).
PUBLIC = {
    "accounts.access": set(accounts.access.__all__),
    "accounts.access.paths": None,
    "accounts.access.permissions": None,
    "accounts.access.masking": None,  # keyed hashes for the query engine, no grant in it
    # the managers' `readable_by` (models import it directly: the package imports models)
    "accounts.access.querysets": {"ReadableQuerySet", "GrantQuerySet"},
    "accounts.access.restrictions": {"Restriction", "UNRESTRICTED", "validate_restriction"},
}
# The layer's internals: no module outside it names them.
INTERNAL = {
    "restriction_for",
    "has_privilege",
    "read_grants",
    "prefetch_read_grants",
    "grants_visible_to",
    "refuse_if_restricted",
    "refuse_masked_writer",
}
# Only the layer names the request's resource for the request log (and the log itself).
NOTE = "note_resource"
NOTE_ALLOWED = {"lineage/audit.py"}


def sources() -> list[Path]:
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith("accounts/access/") or "/migrations/" in relative:
                continue
            found.append(path)
    return found


def violations(source: str, where: str) -> list[str]:
    """file:line: what is wrong, for each use of the layer past its public API."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + ".") and alias.name not in PUBLIC:
                    found.append(f"{line}: imports {alias.name} (internal to the access layer)")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
            if node.module not in PUBLIC:
                found.append(f"{line}: imports from {node.module} (internal to the access layer)")
                continue
            allowed = PUBLIC[node.module]
            for alias in node.names:
                if alias.name in INTERNAL or (allowed is not None and alias.name not in allowed):
                    found.append(f"{line}: imports {alias.name} from {node.module}; ask Access")
        elif isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in INTERNAL:
                found.append(f"{line}: uses {name}; ask Access (accounts.access)")
            elif name == NOTE and where not in NOTE_ALLOWED:
                found.append(f"{line}: names the request's resource itself; Access notes it")
    return found


def test_no_module_reaches_past_the_access_layers_public_api():
    found = []
    for path in sources():
        where = path.relative_to(ROOT).as_posix()
        found += violations(path.read_text(encoding="utf-8"), where)
    assert not found, "\n".join(found)
    assert len(sources()) > 50  # the walk found the apps


def test_the_lint_catches_each_kind_of_bypass():
    bad = (
        "from accounts.access.grants import has_privilege\n"
        "import accounts.access.policy\n"
        "from accounts.access.restrictions import restriction_for, combine\n"
        "from accounts.access import Access\n"
        "from lineage.audit import note_resource\n"
        "def view(request):\n"
        "    accounts.access.grants.has_privilege(request.user, 'x', 'read')\n"
        "    note_resource(request, 'x')\n"
    )
    found = violations(bad, "x.py")
    assert any("x.py:1: imports from accounts.access.grants" in f for f in found), found
    assert any("x.py:2: imports accounts.access.policy" in f for f in found), found
    assert any("imports restriction_for" in f for f in found), found
    assert any("imports combine" in f for f in found), found
    assert any("x.py:7: uses has_privilege" in f for f in found), found
    assert any("x.py:8: names the request's resource" in f for f in found), found
    assert not violations("from accounts.access import Access, data_path\n", "y.py")
