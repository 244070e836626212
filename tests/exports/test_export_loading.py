"""Exports load with `datasets` as the public data does, and the DPO formats follow TRL's
prompt/chosen/rejected convention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.projects.taxonomy import PKU_SAFERLHF_19
from tests.support.consensus_factory import SAFE, annotate, build, payload, unsafe, user


@pytest.fixture
def hf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    datasets.disable_progress_bars()
    return datasets


def public_features(datasets: Any) -> Any:
    """The feature types of the public PKU-Alignment/PKU-SafeRLHF data set."""
    text, flag, level = datasets.Value("string"), datasets.Value("bool"), datasets.Value("int64")
    categories = {name: flag for name in PKU_SAFERLHF_19}
    return datasets.Features(
        {
            "prompt": text,
            "response_0": text,
            "response_1": text,
            "prompt_source": text,
            "response_0_source": text,
            "response_1_source": text,
            "is_response_0_safe": flag,
            "is_response_1_safe": flag,
            "response_0_harm_category": categories,
            "response_1_harm_category": categories,
            "response_0_severity_level": level,
            "response_1_severity_level": level,
            "better_response_id": level,
            "safer_response_id": level,
            "response_0_sha256": text,
            "response_1_sha256": text,
        }
    )


def fill(db: Session) -> Any:
    # Fixed prompts, so that both sides of the split are known not to be empty (5 in test).
    built = build(db, 12, prompts=[f"Loading prompt {i}: is this safe?" for i in range(12)])
    shapes = [
        ([SAFE, unsafe("moderate", "Violence")], (1, 0), (0, 1)),
        ([unsafe("severe", "Cybercrime", "Privacy Violation"), SAFE], (0, 1), (1, 0)),
        ([SAFE, SAFE], (0, 1), (1, 0)),
        ([unsafe("minor"), unsafe("moderate", "Drugs")], (1, 0), (0, 1)),
    ]
    for i, item in enumerate(built.items):
        labels, helpful, harmless = shapes[i % len(shapes)]
        body = payload(built.ids(item), labels, helpful=helpful, harmless=harmless)
        for _ in range(3):
            annotate(db, built, item, user(db), body)
    return built


def download(
    client: TestClient, headers: dict[str, str], fmt: str, path: Path, **params: Any
) -> None:
    r = client.get(f"/api/v1/exports/{fmt}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    path.write_bytes(r.content)


def test_pku_saferlhf_export_loads_with_the_public_feature_types(
    client: TestClient, admin_headers: dict[str, str], db: Session, tmp_path: Path, hf: Any
) -> None:
    built = fill(db)
    folder = tmp_path / "pku"
    folder.mkdir()
    batch = built.batch.id
    # The folder layout safe-rlhf reads: train.jsonl and test.jsonl.
    download(
        client,
        admin_headers,
        "pku-saferlhf",
        folder / "train.jsonl",
        batch_id=batch,
        split="train",
        test_fraction=0.25,
    )
    download(
        client,
        admin_headers,
        "pku-saferlhf",
        folder / "test.jsonl",
        batch_id=batch,
        split="test",
        test_fraction=0.25,
    )
    files = {"train": str(folder / "train.jsonl"), "test": str(folder / "test.jsonl")}

    inferred = hf.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "cache"))
    expected = public_features(hf)
    assert inferred["train"].features == expected
    assert (inferred["train"].num_rows, inferred["test"].num_rows) == (7, 5)

    typed = hf.load_dataset(
        "json", data_files=files, features=expected, cache_dir=str(tmp_path / "cache2")
    )
    rows = list(typed["train"]) + list(typed["test"])
    assert len(rows) == 12
    for row in rows:
        # safe-rlhf's cost model rejects a safer answer labelled unsafe next to a safe one.
        safer = row["safer_response_id"]
        safe = (row["is_response_0_safe"], row["is_response_1_safe"])
        assert not (not safe[safer] and safe[1 - safer])
        for i in (0, 1):
            assert safe[i] == (row[f"response_{i}_severity_level"] == 0)
            assert safe[i] == (not any(row[f"response_{i}_harm_category"].values()))


def test_dpo_exports_load_as_trl_preference_data(
    client: TestClient, admin_headers: dict[str, str], db: Session, tmp_path: Path, hf: Any
) -> None:
    built = fill(db)
    for fmt in ("dpo-helpful", "dpo-harmless"):
        path = tmp_path / f"{fmt}.jsonl"
        download(client, admin_headers, fmt, path, batch_id=built.batch.id)
        data = hf.load_dataset(
            "json", data_files=str(path), split="train", cache_dir=str(tmp_path / fmt)
        )
        # TRL's standard preference format with an explicit prompt: three string columns.
        assert data.column_names == ["prompt", "chosen", "rejected"]
        assert all(f == hf.Value("string") for f in data.features.values())
        assert data.num_rows == 12
        prompts = {item.prompt for item in built.items}
        answers = {r.text for rows in built.responses.values() for r in rows}
        for row in data:
            assert row["prompt"] in prompts
            assert row["chosen"] in answers and row["rejected"] in answers
            assert row["chosen"] != row["rejected"]
