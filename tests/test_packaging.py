"""Packaging: the wheel carries templates, static files and migrations; the README stays a
short front door to docs/, and nothing cites notes outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_bundles_runtime_files(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=180,
    )
    wheel = next(tmp_path.glob("safepref-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "app/_bundled/templates/base.html" in names
    assert "app/_bundled/static/app.css" in names
    assert "app/_bundled/alembic.ini" in names
    assert any(n.startswith("app/_bundled/migrations/versions/") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "safepref = app.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_readme_stays_short_and_its_links_resolve() -> None:
    # The README is the front door (what it is, the two commands, a tour); the rest lives in docs/,
    # where `mkdocs build --strict` checks the links. The README's own links are checked here.
    readme = ROOT / "README.md"
    assert readme.stat().st_size < 10 * 1024, "README.md must stay under 10 KB: move text to docs/"
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme.read_text(encoding="utf-8"))
    local = [t for t in targets if "://" not in t]
    assert local, "the README should link into docs/"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_no_file_cites_the_design_notes_outside_the_repository() -> None:
    # The design and data reference are written in docs/ in our own words; nothing in the
    # repository may point at notes that are not part of it.
    banned = ("DESIGN" + ".md", "REFERENCE" + ".md", "../" + "shared")
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, timeout=60
        )
        .stdout.decode()
        .split("\0")
    )
    offenders = []
    for name in filter(None, tracked):
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".ico", ".woff2"}:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        offenders += [f"{name}: {word}" for word in banned if word in text]
    assert not offenders, offenders
