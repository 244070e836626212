"""`safepref export --to-dataset DIR`: a folder that `datasets.load_dataset` loads, with the
public PKU-SafeRLHF feature types, the same rows as the JSONL export, and a dataset card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app import migrate
from app.config import Settings
from app.db import make_engine
from app.exports.filters import split_of
from app.projects.taxonomy import PKU_SAFERLHF_19
from tests.support.consensus_factory import SAFE, annotate, build, payload, unsafe, user

PROMPTS = [f"Dataset prompt number {i}: is this safe?" for i in range(12)]


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAFEPREF_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "export", *args],
        capture_output=True,
        env=env,
        text=True,
        timeout=300,
    )


def seeded(databases: Any) -> tuple[str, int]:
    url = str(databases.new_url())
    engine = make_engine(Settings(database_url=url))
    migrate.upgrade(engine)
    with Session(engine) as db, db.begin():
        built = build(db, len(PROMPTS), prompts=PROMPTS)
        for item in built.items:
            body = payload(built.ids(item), [SAFE, unsafe("moderate", "Violence")])
            for _ in range(3):
                annotate(db, built, item, user(db), body)
        batch_id = built.batch.id
    engine.dispose()
    return url, batch_id


def test_dataset_folder_loads_with_public_feature_types(databases: Any, tmp_path: Path) -> None:
    import datasets

    url, batch_id = seeded(databases)
    folder = tmp_path / "pku"
    done = cli(
        url,
        "--format",
        "pku-saferlhf",
        "--batch",
        str(batch_id),
        "--test-fraction",
        "0.5",
        "--to-dataset",
        str(folder),
        "--license",
        "cc-by-nc-4.0",
    )
    assert done.returncode == 0, done.stderr
    expected_test = sum(split_of(p, 0.5) == "test" for p in PROMPTS)
    assert 0 < expected_test < len(PROMPTS)  # both splits hold rows (fixed prompts)

    loaded = datasets.load_dataset(str(folder))
    assert set(loaded) == {"train", "test"}
    assert loaded["test"].num_rows == expected_test
    assert loaded["train"].num_rows == len(PROMPTS) - expected_test
    string, boolean, integer = (datasets.Value(t) for t in ("string", "bool", "int64"))
    categories = {name: boolean for name in PKU_SAFERLHF_19}
    public = datasets.Features(
        {
            "prompt": string,
            "response_0": string,
            "response_1": string,
            "prompt_source": string,
            "response_0_source": string,
            "response_1_source": string,
            "is_response_0_safe": boolean,
            "is_response_1_safe": boolean,
            "response_0_harm_category": categories,
            "response_1_harm_category": categories,
            "response_0_severity_level": integer,
            "response_1_severity_level": integer,
            "better_response_id": integer,
            "safer_response_id": integer,
            "response_0_sha256": string,
            "response_1_sha256": string,
        }
    )
    for split in ("train", "test"):
        assert loaded[split].features == public, split
        # The same rows as the JSONL export of that split.
        jsonl = tmp_path / f"{split}.jsonl"
        exported = cli(
            url,
            "--format",
            "pku-saferlhf",
            "--batch",
            str(batch_id),
            "--test-fraction",
            "0.5",
            "--split",
            split,
            "-o",
            str(jsonl),
        )
        assert exported.returncode == 0, exported.stderr
        rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
        assert loaded[split].to_list() == rows

    card = (folder / "README.md").read_text()
    assert card.startswith('---\nlicense: "cc-by-nc-4.0"\n')
    assert f"| test | {expected_test} |" in card
    assert "| response_0_harm_category | {" in card and "| better_response_id | int64 |" in card
    assert '"test_fraction": 0.5' in card and f'"batch_id": {batch_id}' in card
    assert f"| {batch_id} | " in card  # the batch's agreement row
    assert "Endangering National Security" in card  # the taxonomy


def test_dataset_option_conflicts_are_refused(databases: Any, tmp_path: Path) -> None:
    url, _ = seeded(databases)
    bad = cli(
        url, "--format", "pku-saferlhf", "--to-dataset", str(tmp_path / "x"), "--split", "train"
    )
    assert bad.returncode == 2 and "--to-dataset" in bad.stderr
    assert not (tmp_path / "x").exists()
