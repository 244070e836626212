"""Mutation testing of the modules that hold the product's rules (mutmut, SQLite only).

    .venv/bin/python bench/mutation.py                 # every group, then the scores
    .venv/bin/python bench/mutation.py consensus queue # some groups only
    .venv/bin/python bench/mutation.py --report        # scores of the last runs, no run
    .venv/bin/python bench/mutation.py --survivors     # also list each surviving mutant
    .venv/bin/python bench/mutation.py --retest GROUP  # rerun the survivors (after new tests)

Each group mutates a few modules and runs only the test files that exercise them; mutmut then
runs, for each mutant, only the tests that called the mutated function. A group works in its own
copy of the checkout (.mutation/GROUP, git-ignored) so that groups never share a mutmut config,
and a run that is stopped resumes where it stopped (delete .mutation/ to start over). A pytest
plugin written into the copy runs the test files in the group's order and empties the mutated
modules' function caches before each test, so a cached result never hides a mutant.

PostgreSQL is left out on purpose (SAFEPREF_TEST_POSTGRES_URL is unset for the run): the
rules are the same on both backends and SQLite keeps a run within an hour on two cores.
Surviving mutants that cannot change behaviour are listed, with the reason, in the equivalent
mutants table of docs/contributors/testing.md; the score leaves them out of the count.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
DOC = ROOT / "docs" / "contributors" / "testing.md"
MUTMUT = Path(sys.executable).parent / "mutmut"

# Group -> (modules to mutate, test files that exercise them). Paths are from the repository
# root; change them here when a module or a test file moves.
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "consensus": (
        ["app/consensus/aggregate.py", "app/consensus/labels.py", "app/consensus/votes.py"],
        [
            "tests/consensus/test_consensus_rules.py",
            "tests/consensus/test_consensus_units.py",
            "tests/exports/test_export_filters.py",
            "tests/exports/test_exports.py",
            "tests/exports/test_export_guards.py",
        ],
    ),
    "exports": (
        ["app/exports/filters.py", "app/exports/formats.py"],
        [
            "tests/exports/test_export_filters.py",
            "tests/exports/test_exports.py",
            "tests/exports/test_export_guards.py",
            "tests/exports/test_export_cli.py",
        ],
    ),
    "annotations": (
        ["app/annotations/validation.py"],
        [
            "tests/annotations/test_annotation_validation.py",
            "tests/annotations/test_annotation_submit.py",
        ],
    ),
    "csrf-access": (
        ["app/core/csrf.py", "app/core/csrf_tokens.py", "app/auth/access.py"],
        [
            "tests/web/test_csrf_middleware.py",
            "tests/auth/test_access_rules.py",
            "tests/web/test_csrf_methods.py",
        ],
    ),
    "queue": (
        ["app/queue/orm.py"],
        [
            "tests/queue/test_queue_skips.py",
            "tests/queue/test_queue.py",
            "tests/queue/test_gold_queue.py",
            "tests/queue/test_exclusion.py",
            "tests/queue/test_adaptive.py",
        ],
    ),
    "imports": (
        ["app/imports/formats.py", "app/imports/lines.py"],
        ["tests/imports/test_import_formats.py"],
    ),
}
# What a copy needs besides the sources: the tests and the files the app reads at run time.
COPIED = ("app", "tests", "templates", "static", "migrations", "alembic.ini", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "artifacts")

PLUGIN = """\"\"\"Written by bench/mutation.py: runs test files in the group's order and empties the
mutated modules' function caches before each test.\"\"\"

import importlib

import pytest

FILES = {files!r}
MODULES = {modules!r}


def pytest_collection_modifyitems(items):
    def rank(item):
        path = item.nodeid.split("::")[0].removeprefix("mutants/")
        return FILES.index(path) if path in FILES else len(FILES)

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _mutation_fresh_caches():
    # mutmut forks each mutant's run from a process that already ran the tests: a cached
    # result built there by the original code (the queue's claim statements) would hide the
    # mutant. Emptied per test, each test builds it again with the mutant, and the stats run
    # records every test that reaches the mutated function, not only the first one.
    for name in MODULES:
        for value in vars(importlib.import_module(name)).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
"""

# mutmut's exit codes per mutant (mutmut/stats.py), folded into what the score needs.
KILLED = {1, 3, 24, -24, 36, 37, 152, 255}
TIMEOUT = {24, -24, 36}  # killed by mutmut's time limit: listed, to tell a loop from a slow run
SURVIVED = {0}
NO_TESTS = {5, 33}
SKIPPED = {34}


@dataclass
class Tally:
    killed: int = 0
    timeouts: list[str] = field(default_factory=list)  # counted in `killed`
    survived: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    no_tests: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # not run yet, suspicious, segfault

    @property
    def counted(self) -> int:
        return self.killed + len(self.survived) + len(self.no_tests) + len(self.other)

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.counted if self.counted else 0.0

    def add(self, other: Tally) -> None:
        self.killed += other.killed
        self.timeouts += other.timeouts
        self.survived += other.survived
        self.equivalent += other.equivalent
        self.no_tests += other.no_tests
        self.other += other.other


def equivalent_mutants() -> dict[str, str]:
    """Mutant name -> why it cannot change behaviour, from the table in the contributors' page
    (rows such as ``| `app.x.x_f__mutmut_3` | reason |``)."""
    if not DOC.exists():
        return {}
    row = re.compile(r"^\|\s*`([\w.]+__mutmut_\d+)`\s*\|\s*(.+?)\s*\|\s*$")
    found = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = row.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def check_paths() -> None:
    missing = [
        path
        for modules, tests in GROUPS.values()
        for path in (*modules, *tests)
        if not (ROOT / path).exists()
    ]
    if missing:
        sys.exit(
            "mutation: these paths do not exist (update GROUPS in bench/mutation.py):\n  "
            + "\n  ".join(missing)
        )


def prepare(group: str) -> Path:
    """A copy of the checkout with a mutmut config for this group only."""
    modules, tests = GROUPS[group]
    where = WORK / group
    where.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source, target = ROOT / name, where / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    # pytest is handed each mutant's tests as an unordered set; run them in the group's file
    # order instead, fast unit tests first, so that most mutants die in the first second.
    names = [module.removesuffix(".py").replace("/", ".") for module in modules]
    (where / "tests" / "_mutation_plugin.py").write_text(PLUGIN.format(files=tests, modules=names))
    config = {
        "source_paths": ["app"],
        "only_mutate": modules,
        "also_copy": ["templates", "static", "migrations", "alembic.ini"],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": [
            "-p",
            "no:cacheprovider",
            "-p",
            "tests._mutation_plugin",
            "-m",
            "not browser and not slow",
            "--timeout=0",
        ],
        # mutmut's limit is wall-clock time too (a multiple of the tests' time in the stats
        # run): at 4 a loaded machine let mutants that ran all their tests time out, which
        # counts them as killed.
        "timeout_multiplier": 10.0,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(v)}" for key, v in config.items()]
    with (where / "pyproject.toml").open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return where


def run(group: str, jobs: int, names: list[str] | None = None) -> None:
    """mutmut run for the group: new mutants, or only `names` (mutmut keeps earlier verdicts
    unless a mutant is named, so survivors are named to be tested again)."""
    where = prepare(group)
    env = {k: v for k, v in os.environ.items() if k not in ("SAFEPREF_TEST_POSTGRES_URL", "CI")}
    started = time.monotonic()
    print(f"== {group}: mutmut run in {where.relative_to(ROOT)}", flush=True)
    with (where / "mutmut.log").open("w") as log:
        done = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(jobs), *(names or [])],
            cwd=where,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    print(f"   exit {done.returncode} after {time.monotonic() - started:.0f} s", flush=True)
    if done.returncode != 0:
        print((where / "mutmut.log").read_text(errors="replace")[-3000:])


def tally(group: str, equivalent: dict[str, str]) -> dict[str, Tally]:
    """Verdicts per mutated module, from mutmut's files of the group's last run."""
    out: dict[str, Tally] = {}
    mutants = WORK / group / "mutants"
    for meta in sorted(mutants.glob("app/**/*.py.meta")):
        t = out[str(meta.relative_to(mutants))[: -len(".meta")]] = Tally()
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in sorted(codes.items()):
            if code in KILLED:
                t.killed += 1
                if code in TIMEOUT:
                    t.timeouts.append(name)
            elif code in SKIPPED:
                continue
            elif code in SURVIVED and name in equivalent:
                t.equivalent.append(name)
            elif code in SURVIVED:
                t.survived.append(name)
            elif code in NO_TESTS:
                t.no_tests.append(name)
            else:
                t.other.append(name)
    return out


def report(groups: list[str], survivors: bool) -> float:
    equivalent = equivalent_mutants()
    total = Tally()
    print(f"{'module':<34} {'killed':>7} {'survived':>9} {'no test':>8} {'equiv':>6} {'score':>7}")
    for group in groups:
        for module, t in tally(group, equivalent).items():
            total.add(t)
            print(
                f"{module:<34} {t.killed:>7} {len(t.survived):>9} {len(t.no_tests):>8} "
                f"{len(t.equivalent):>6} {t.score:>6.1f}%"
                + (f"  ({len(t.other)} not run)" if t.other else "")
                + (f"  ({len(t.timeouts)} killed by the time limit)" if t.timeouts else "")
            )
            if survivors:
                for name in t.survived + t.no_tests:
                    print(f"    survived: {name}")
                for name in t.timeouts:
                    print(f"    timed out: {name}")
    print(
        f"{'overall':<34} {total.killed:>7} {len(total.survived):>9} {len(total.no_tests):>8} "
        f"{len(total.equivalent):>6} {total.score:>6.1f}%"
    )
    print("score = killed / (killed + survived + no test); listed equivalent mutants left out")
    return total.score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("groups", nargs="*", help=f"default: all of {', '.join(GROUPS)}")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--report", action="store_true", help="print the last scores only")
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants")
    parser.add_argument("--retest", action="store_true", help="run the survivors again")
    args = parser.parse_args()
    groups = args.groups or list(GROUPS)
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        sys.exit(f"mutation: unknown group {', '.join(unknown)}; use {', '.join(GROUPS)}")
    check_paths()
    if not MUTMUT.exists():
        sys.exit("mutation: mutmut is missing (bash scripts/install.sh test)")
    if not args.report:
        for group in groups:
            if args.retest:
                equivalent = equivalent_mutants()
                names = [
                    name
                    for t in tally(group, equivalent).values()
                    for name in t.survived + t.no_tests + t.other
                ]
                if names:
                    run(group, args.jobs, names)
            else:
                run(group, args.jobs)
    report(groups, args.survivors)


if __name__ == "__main__":
    main()
