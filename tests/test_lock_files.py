"""The Python lock files (scripts/lock.sh): every dependency pinned with hashes, and used."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from tests.support.live_server import ROOT

PINNED = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", re.MULTILINE)


def pins(name: str) -> dict[str, str]:
    text = (ROOT / "requirements" / name).read_text()
    found = {m.group(1).lower().replace("_", "-"): m.group(2) for m in PINNED.finditer(text)}
    # Each pin carries at least one hash, which pip checks (--require-hashes).
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert all("--hash=sha256:" in b for b in blocks if "==" in b)
    return found


def declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return [Requirement(r) for r in names]


def test_every_dependency_is_locked_within_its_range() -> None:
    for lock, extra in (("run.txt", None), ("test.txt", "test")):
        locked = pins(lock)
        for requirement in declared(extra):
            name = requirement.name.lower().replace("_", "-")
            assert name in locked, f"{name} is not in requirements/{lock}: bash scripts/lock.sh"
            assert Version(locked[name]) in requirement.specifier, (lock, name, locked[name])


def test_multipart_has_the_2024_parsing_fixes() -> None:
    assert Version(pins("run.txt")["python-multipart"]) >= Version("0.0.18")


def test_install_script_dockerfile_and_ci_install_from_the_lock() -> None:
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert "--require-hashes -r" in install and "requirements/test.txt" in install
    assert "--no-deps" in install
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/run.txt" in dockerfile
    # CI runs the test script, which installs with scripts/install.sh.
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/install.sh test" in (ROOT / "scripts" / "test.sh").read_text()
