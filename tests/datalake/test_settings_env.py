"""Settings hygiene: every environment variable settings.py reads is in `.env.example`
(with a comment), the code reads settings as `settings.X` (each defined, with its
default, in settings.py), and docker-compose publishes no secret.

Read from the source, not from a loaded settings module: a variable read on one branch
only (outside DEBUG, say) counts as much as the others.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "datalake" / "settings.py"
APPS = ("datalake", "accounts", "ingestion", "metrics", "lineage", "scripts", "bench")
# The readers of the environment in settings.py: django-environ's `env(...)`, `env.int(...)`
# and the like, os.environ / os.getenv, and settings.py's own `_secret(NAME)`.
ENV_READERS = {"env", "getenv", "_secret"}


def _string(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _reader(func) -> str | None:
    """`env`, `env.bool`, `os.getenv`, `os.environ.get`, `_secret`: the reader's root name."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name) and func.value.id == "env":
            return "env"
        if func.attr == "getenv":
            return "getenv"
        if func.attr == "get" and isinstance(func.value, ast.Attribute):
            return "getenv" if func.value.attr == "environ" else None
    return None


def environment_reads(source: str) -> set[str]:
    """The names of the environment variables `source` reads."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and _reader(node.func) in ENV_READERS:
            if (name := _string(node.args[0])) is not None:
                names.add(name)
        elif isinstance(node, ast.Subscript):  # os.environ["X"]
            value, name = node.value, _string(node.slice)
            if isinstance(value, ast.Attribute) and value.attr == "environ" and name is not None:
                names.add(name)
    return names


def example_entries() -> dict[str, str]:
    """`.env.example`'s variables (set, or commented out) -> the comment just above."""
    entries, comment = {}, ""
    for line in (ROOT / ".env.example").read_text().splitlines():
        setting = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if setting:  # consecutive settings share the comment above them
            entries[setting.group(1)] = comment
        elif not line.strip() or line.startswith("# ---"):
            comment = ""
        elif line.startswith("#"):
            comment = line.lstrip("#").strip()
    return entries


def test_the_parser_finds_every_kind_of_read():
    source = (
        "a = env('A', default=1)\nb = env.int('B', default=2)\nc = env.db('C')\n"
        "d = os.environ.get('D')\ne = os.environ['E']\nf = os.getenv('F')\ng = _secret('G')\n"
        "h = other('H')\n"
    )
    assert environment_reads(source) == set("ABCDEFG")


def test_every_environment_variable_settings_reads_is_in_env_example():
    read = environment_reads(SETTINGS.read_text())
    assert {"DATABASE_URL", "SECRET_KEY", "LAKE_MASKING_KEY", "LOG_FORMAT"} <= read  # the parse
    entries = example_entries()
    missing = sorted(read - set(entries))
    assert not missing, f"Add to .env.example, each with a one-line comment: {missing}"
    uncommented = sorted(name for name in read if not entries[name])
    assert not uncommented, f"Say in .env.example what these are: {uncommented}"


def _getattr_with_default(path: Path) -> list[str]:
    """`getattr(settings, "X", default)` calls in the file, as `path:line X`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 3
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "settings"
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {_string(node.args[1])}")
    return found


def test_no_setting_is_read_with_a_default_outside_settings_py():
    found = [
        hit
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        for hit in _getattr_with_default(path)
    ]
    assert not found, (
        f"Define these in datalake/settings.py with their default and read settings.X: {found}"
    )


def test_every_setting_the_code_reads_is_defined():
    from django.conf import settings

    pattern = re.compile(r"\bsettings\.([A-Z][A-Z0-9_]+)\b")
    used = {
        name
        for app in APPS[:5]
        for path in (ROOT / app).rglob("*.py")
        for name in pattern.findall(path.read_text())
    }
    assert sorted(name for name in used if not hasattr(settings, name)) == []


def test_compose_publishes_no_secret():
    """Compose refuses to start without each secret rather than fall back to a known one."""
    compose = (ROOT / "docker-compose.yml").read_text()
    for name in ("SECRET_KEY", "LAKE_MASKING_KEY", "POSTGRES_PASSWORD"):
        values = re.findall(rf"^\s*{name}:\s*(.+)$", compose, re.M)
        assert values, name
        assert all(v.startswith(f"${{{name}:?") for v in values), (name, values)
