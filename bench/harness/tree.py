"""A source tree a benchmark measures: its root, its interpreter, its `manage.py` and
Django-side set-up jobs, and the environment its servers run with.

The harness and the scenarios always come from *this* tree; the product code comes from
the tree measured. `Tree.worktree(ref)` checks another ref out in a `git worktree`
(detached, removed at the end) for the A/B mode; its servers run from its own directory
with `PYTHONPATH=<its root>:bench/harness/site` and `benchsite.settings`, so the other
tree's own `bench/` (old scripts, old settings) plays no part.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HARNESS = Path(__file__).resolve().parent
BENCH = HARNESS.parent
ROOT = BENCH.parent
SITE = HARNESS / "site"  # the `benchsite` package: settings, urls, reference views
CHILD = HARNESS / "child.py"


def sh(command: list[str] | str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        command, shell=isinstance(command, str), cwd=cwd, capture_output=True, text=True
    )
    return done.stdout.strip()


class Tree:
    def __init__(self, root: Path, label: str = "A", python: Path | None = None):
        self.root = Path(root)
        self.label = label
        own = self.root / ".venv" / "bin" / "python"
        # A worktree of another ref has no virtualenv of its own: this tree's runs it.
        self.python = Path(python or (own if own.exists() else sys.executable))
        self.bin = self.python.parent
        self._temporary: Path | None = None

    def __repr__(self) -> str:
        return f"Tree({self.label}: {self.root} @ {self.commit()})"

    # -- what it is ---------------------------------------------------------------------

    def commit(self) -> str:
        return sh(["git", "-C", str(self.root), "rev-parse", "--short", "HEAD"])

    def facts(self) -> dict:
        """The code measured: commit, subject, and whether the work tree differs from it
        (outside bench/: the product code as it is, others may be editing it)."""
        git = ["git", "-C", str(self.root)]
        return {
            "label": self.label,
            "root": str(self.root),
            "commit": self.commit(),
            "subject": sh([*git, "log", "-1", "--format=%s"])[:100],
            "worktree_changes": len(
                [
                    x
                    for x in sh(
                        [*git, "status", "--short", "-uno", "--", ".", ":!bench"]
                    ).splitlines()
                    if x
                ]
            ),
            "worktree_diff_sha1": sh(
                f"git -C {self.root} diff HEAD -- . ':!bench' | sha1sum | cut -c1-12"
            ),
            "python": str(self.python),
        }

    def migrations(self) -> dict[str, str]:
        """path -> content hash of every migration file: two trees with the same set can
        share one database."""
        out = sh(
            f"cd {self.root} && git ls-files -co --exclude-standard -- '*/migrations/*.py' "
            "| sort | xargs -r sha1sum"
        )
        return {line.split()[1]: line.split()[0] for line in out.splitlines() if line.strip()}

    # -- running its code ---------------------------------------------------------------

    def env(self, db_url: str, settings: str = "benchsite.settings", **extra: str) -> dict:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings,
            "DATABASE_URL": db_url,
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(self.root), str(SITE)]),
            **extra,
        }

    def manage(
        self,
        db_url: str,
        *args: str,
        timeout: float = 7200,
        env: dict | None = None,
        capture: bool = False,
    ) -> str:
        """`manage.py <args>` in this tree's code; its output when `capture`."""
        done = subprocess.run(
            [str(self.python), "manage.py", *args],
            cwd=self.root,
            env=self.env(db_url, **(env or {})),
            check=True,
            timeout=timeout,
            capture_output=capture,
            text=True,
        )
        return done.stdout if capture else ""

    def job(self, db_url: str, name: str, _env: dict | None = None, **kwargs) -> dict:
        """A Django-side set-up job of bench/harness/child.py, in this tree's code:
        one of its JOBS, or `<file>.py:<function>` of a scenario's own helper (loaded by
        path, from this harness's tree). `_env`: more environment (e.g. LAKE_ROOT)."""
        done = subprocess.run(
            [str(self.python), str(CHILD), name, json.dumps(kwargs)],
            cwd=self.root,
            env=self.env(db_url, **(_env or {})),
            capture_output=True,
            text=True,
            timeout=3600,
        )
        for line in done.stdout.splitlines():
            if line.startswith("CHILD_RESULT "):
                return json.loads(line.removeprefix("CHILD_RESULT "))
        raise RuntimeError(
            f"set-up job {name} in {self.root} failed (exit {done.returncode}):\n"
            f"{done.stderr.strip()[-3000:]}"
        )

    def script(self, db_url: str, path: str, options: dict, marker: str, **env: str) -> dict:
        """A scenario's measuring script (`bench/scenarios/<x>_job.py`) run by path in this
        tree's interpreter, from its root, with `options` as its JSON argument; its output
        goes to the console as it runs, and its result is the JSON after `<marker> ` on
        the line that starts with it."""
        process = subprocess.Popen(
            [str(self.python), str(BENCH.parent / path), json.dumps(options)],
            cwd=self.root,
            env=self.env(db_url, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        result = None
        for line in process.stdout:
            if line.startswith(f"{marker} "):
                result = json.loads(line.removeprefix(f"{marker} "))
            else:
                print(line, end="", flush=True)
        code = process.wait()
        if code != 0 or result is None:
            raise RuntimeError(f"{path} in {self.root} failed (exit {code}, no {marker} line)")
        return result

    # -- another ref --------------------------------------------------------------------

    @classmethod
    def worktree(cls, ref: str, label: str = "B") -> Tree:
        """A detached `git worktree` of `ref` in a temporary directory (`close()` removes it)."""
        commit = sh(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"])
        if not commit:
            raise SystemExit(f"{ref!r} is no commit of this repository")
        path = Path(tempfile.mkdtemp(prefix=f"bench-{commit[:8]}-"))
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), commit],
            check=True,
        )
        tree = cls(path, label, python=ROOT / ".venv" / "bin" / "python")
        tree._temporary = path
        return tree

    def close(self) -> None:
        if self._temporary is None:
            return
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self._temporary)],
            capture_output=True,
        )
        shutil.rmtree(self._temporary, ignore_errors=True)
        self._temporary = None


def this_tree() -> Tree:
    return Tree(ROOT, "A")
