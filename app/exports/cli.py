"""`safepref export`: the HTTP export's filters, to a file or standard output."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import get_read_sessionmaker
from app.errors import Invalid, NotFound
from app.exports.dataset import write_dataset
from app.exports.filters import ExportFilters, parse_dimensions
from app.exports.formats import FORMATS
from app.exports.keys import pseudonym_key
from app.exports.parallel import default_jobs, export_parallel
from app.exports.service import (
    PAGE_SIZE,
    Progress,
    Scope,
    count_units,
    export_lines,
    resolve_scope,
)
from app.files import open_private
from app.projects.models import Project


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export agreement-filtered JSONL (see docs: formats and filters)",
        description="Streams an export as JSONL to -o FILE or standard output.",
    )
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--batch", type=int, help="batch id (default: every batch in scope)")
    p.add_argument("--project", help="project name")
    p.add_argument(
        "--min-annotations", type=int, help="annotations an item needs (default: batch overlap)"
    )
    p.add_argument(
        "--min-agreement",
        type=float,
        help="share of annotators that must agree, 0..1 (default: a strict majority)",
    )
    p.add_argument(
        "--dimensions",
        nargs="+",
        help="dimensions that must agree: helpfulness harmlessness single is_safe "
        "(default: those the format writes)",
    )
    p.add_argument(
        "--include-unresolved",
        action="store_true",
        help="keep items without a strict majority (plurality labels)",
    )
    p.add_argument(
        "--accepted-only",
        action="store_true",
        help="keep only items whose annotations were all accepted in review",
    )
    p.add_argument("--split", choices=["train", "test"])
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument(
        "--jobs",
        type=int,
        help="worker processes for the consensus formats (default: up to 4 on PostgreSQL, "
        "1 on SQLite); the output is the same",
    )
    p.add_argument("-o", "--output", help="output file (default: standard output)")
    p.add_argument(
        "--to-dataset",
        metavar="DIR",
        help="write a Hugging Face datasets folder instead: Parquet per split (train and test, "
        "by --test-fraction) and a README.md dataset card",
    )
    p.add_argument(
        "--license",
        default="other",
        help="license recorded in the dataset card (with --to-dataset; default %(default)s)",
    )
    p.add_argument("--page-size", type=int, default=PAGE_SIZE, help=argparse.SUPPRESS)
    p.set_defaults(handler=run)


class _Bar:
    """A one-line progress bar on a terminal's standard error."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.stream = total, 0, stream

    def __call__(self, n: int) -> None:
        self.done += n
        share = self.done / self.total if self.total else 1.0
        filled = int(30 * share)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done:,}/{self.total:,} ({share:.0%})"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    if args.to_dataset and (args.output or args.split):
        raise Invalid("--to-dataset writes both splits to a folder: leave out -o and --split")
    filters_args: dict[str, Any] = {
        "batch_id": args.batch,
        "min_annotations": args.min_annotations,
        "min_agreement": args.min_agreement,
        "dimensions": parse_dimensions(args.dimensions),
        "include_unresolved": args.include_unresolved,
        "split": args.split,
        "test_fraction": args.test_fraction,
        "accepted_only": args.accepted_only,
    }
    with get_read_sessionmaker()() as session:
        if args.project is not None:
            project_id = session.scalar(select(Project.id).where(Project.name == args.project))
            if project_id is None:
                raise NotFound(f"no project named {args.project!r}")
            filters_args["project_id"] = project_id
        filters = ExportFilters(**filters_args)
        scope = resolve_scope(session, filters)
        bar = _Bar(count_units(session, args.format, scope), sys.stderr)
        progress = bar if sys.stderr.isatty() else None
        if args.to_dataset:
            secret = pseudonym_key(session) if args.format == "annotations" else ""
            counts = write_dataset(
                session,
                args.format,
                filters,
                scope,
                Path(args.to_dataset),
                license=args.license,
                secret=secret,
            )
            rows = ", ".join(f"{split} {n}" for split, n in counts.items())
            print(f"dataset written to {args.to_dataset}: {rows} rows", file=sys.stderr)
            return 0
        if args.output is None:
            try:
                _export_to(sys.stdout.buffer, session, args, filters, scope, progress)
            except BrokenPipeError:  # `safepref export ... | head`
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
        else:
            target = Path(args.output)
            partial = target.with_name(target.name + ".partial")
            # Written aside then renamed: a failed export never leaves a truncated file.
            with open_private(partial) as fp:
                _export_to(fp, session, args, filters, scope, progress)
            partial.replace(target)
        if progress is not None:
            bar.close()
    return 0


def _export_to(
    out: BinaryIO,
    session: Session,
    args: argparse.Namespace,
    filters: ExportFilters,
    scope: Scope,
    progress: Progress | None,
) -> None:
    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs > 1 and args.format != "annotations":
        out.flush()
        export_parallel(
            session,
            args.format,
            filters,
            scope,
            jobs,
            out.fileno(),
            page_size=args.page_size,
            progress=progress,
        )
    else:
        secret = pseudonym_key(session) if args.format == "annotations" else ""
        for chunk in export_lines(
            session,
            args.format,
            filters,
            scope,
            secret=secret,
            page_size=args.page_size,
            progress=progress,
        ):
            out.write(chunk)
    out.flush()
