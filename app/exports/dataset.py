"""`safepref export --to-dataset DIR`: a folder that Hugging Face `datasets` loads.

    DIR/README.md                      the dataset card (YAML header: license, splits)
    DIR/data/train-00000-of-00001.parquet
    DIR/data/test-00000-of-00001.parquet

The rows are the export's own JSON records (the same filters, the train/test split by prompt),
written to Parquet chunk by chunk, so memory stays flat. Column types are those of the JSON
values: for `pku-saferlhf` they are the public PKU-SafeRLHF features (strings, booleans, int64,
and a struct of booleans per harm category). The card records the features, row counts, the
filters used, each batch's agreement figures, the taxonomy and the license the admin gave.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from app.consensus.batch_metrics import batch_metrics
from app.exports.filters import ExportFilters, Split
from app.exports.formats import ExportFormat
from app.exports.service import Scope, export_lines

SPLITS: tuple[Split, ...] = ("train", "test")
ROWS_PER_GROUP = 1000


def write_dataset(
    session: Session,
    fmt: ExportFormat,
    filters: ExportFilters,
    scope: Scope,
    target: Path,
    *,
    license: str,
    secret: str = "",
) -> dict[str, int]:
    """Writes the folder (aside, then renamed into place); returns the rows per split."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "data").mkdir(parents=True)
    counts: dict[str, int] = {}
    schemas: dict[str, pa.Schema] = {}
    for split in SPLITS:
        records = _records(session, fmt, replace(filters, split=split), scope, secret)
        path = partial / "data" / f"{split}-00000-of-00001.parquet"
        counts[split], schema = _write_parquet(records, path)
        if schema is not None:
            schemas[split] = schema
    card = dataset_card(session, fmt, filters, scope, counts, schemas, license)
    (partial / "README.md").write_text(card, encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return counts


def _records(
    session: Session, fmt: ExportFormat, filters: ExportFilters, scope: Scope, secret: str
) -> Iterator[dict[str, Any]]:
    for chunk in export_lines(session, fmt, filters, scope, secret=secret):
        for line in chunk.splitlines():
            if line:
                yield json.loads(line)


def _write_parquet(records: Iterator[dict[str, Any]], path: Path) -> tuple[int, pa.Schema | None]:
    """Rows written and their schema (from the first rows); no file for an empty split."""
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    total = 0
    chunk: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal writer, schema
        table = pa.Table.from_pylist(chunk, schema=schema)
        if writer is None:
            schema = table.schema
            writer = pq.ParquetWriter(path, schema)
        writer.write_table(table)
        chunk.clear()

    for record in records:
        chunk.append(record)
        total += 1
        if len(chunk) >= ROWS_PER_GROUP:
            flush()
    if chunk:
        flush()
    if writer is not None:
        writer.close()
    return total, schema


def _feature(kind: pa.DataType) -> str:
    if pa.types.is_struct(kind):
        return "{" + ", ".join(f"{f.name}: {_feature(f.type)}" for f in kind) + "}"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list of {_feature(kind.value_type)}"
    return {"large_string": "string", "bool": "bool"}.get(str(kind), str(kind))


def _yaml_text(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


def dataset_card(
    session: Session,
    fmt: ExportFormat,
    filters: ExportFilters,
    scope: Scope,
    counts: dict[str, int],
    schemas: dict[str, pa.Schema],
    license: str,
) -> str:
    present = [s for s in SPLITS if counts.get(s)]
    header = ["---", f"license: {_yaml_text(license)}", "configs:", "- config_name: default"]
    header.append("  data_files:")
    for split in present:
        header += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    header += ["---", ""]
    lines = [
        f"# safepref export: {fmt}",
        "",
        "Human preference labels collected with safepref, exported with the filters below.",
        'Load it with `datasets.load_dataset("path/to/this/folder")`.',
        "",
        f"License: {license}",
        "",
        "## Splits",
        "",
        "| split | rows |",
        "| --- | ---: |",
        *(f"| {s} | {counts.get(s, 0)} |" for s in SPLITS),
        "",
        "The split is decided by the prompt, so every pair of a prompt is on the same side.",
        "",
        "## Features",
        "",
    ]
    schema = next(iter(schemas.values()), None)
    if schema is None:
        lines.append("No rows passed the filters.")
    else:
        lines += ["| feature | type |", "| --- | --- |"]
        lines += [f"| {f.name} | {_feature(f.type)} |" for f in schema]
    used = {k: v for k, v in asdict(filters).items() if k != "split"}
    lines += [
        "",
        "## Filters used",
        "",
        "```json",
        json.dumps(used, indent=2, default=str),
        "```",
        "",
        "(null means the default: at least the batch overlap in annotations, a strict majority,"
        " and agreement on the dimensions the format writes.)",
        "",
        "## Batches and agreement",
        "",
        "| batch | project | overlap | items | complete | helpfulness alpha | harmlessness alpha |"
        " is_safe alpha | severity alpha |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for batch in scope.batches.values():
        m = batch_metrics(session, batch.id)
        alphas = [
            _figure(getattr(m, d).krippendorff_alpha)
            for d in ("helpfulness", "harmlessness", "is_safe", "severity")
        ]
        lines.append(
            f"| {batch.id} | {batch.project_id} | {batch.overlap} | {m.progress.items} | "
            f"{m.progress.items_complete} | " + " | ".join(alphas) + " |"
        )
    lines += [
        "",
        "alpha: Krippendorff's alpha over the batch's annotations (n/a: not computable).",
        "",
    ]
    lines += ["## Taxonomy", ""]
    for project_id, names in scope.taxonomies.items():
        lines.append(f"Project {project_id}: " + ", ".join(names) + ".")
    lines.append("")
    return "\n".join(header + lines)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
