"""`pip install .` must carry templates, static files and migrations inside the wheel."""

from __future__ import annotations

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
