"""Benchmarks still run by their own script in bench/legacy/ (not yet on the harness).

Their scenario module declares NAME, DESCRIPTION, SCENARIOS and TARGETS (as text: the
script checks them and writes its own results in bench/results/), and `run()` runs the
script with this tree's interpreter, passing the common options the user gave that the
script knows (its own defaults otherwise), plus `--<name>-args "..."` verbatim. The
scripts whose database has a name of its own (`datalake_bench_ingest`, `_pipeline`,
`_load`, `_search_bound`, `_retail`) take --database as the prefix of that name.
"""

from __future__ import annotations

import os
import shlex
import subprocess

from bench.harness import drivers
from bench.harness.scenario import Side
from bench.harness.tree import BENCH


def run_script(side: Side, script: str, args, known: dict[str, str], extra: str) -> bool:
    command = [str(side.tree.python), str(BENCH / "legacy" / script)]
    for option, flag in known.items():
        if option in getattr(args, "given", set()):
            command += [flag, str(getattr(args, option))]
    command += shlex.split(extra or "")
    drivers.log("running " + " ".join(command[1:]))
    env = dict(os.environ)
    if "database" in getattr(args, "given", set()):
        # The scripts with a database of their own name it <this>_<theirs>
        # (datalake_bench_ingest by default; with --database x: x_ingest).
        env["BENCH_DATABASE"] = args.database
    done = subprocess.run(command, cwd=side.tree.root, env=env)
    drivers.log(f"{script}: exit {done.returncode}")
    return done.returncode == 0


def module_arguments(group, name: str, script: str) -> None:
    group.add_argument(
        f"--{name}-args", default="", metavar="ARGS",
        help=f"more options of bench/legacy/{script}, verbatim (its --help lists them)",
    )  # fmt: skip
