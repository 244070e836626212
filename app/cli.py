"""The `safepref` command."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import inspect

from app.auth.models import ROLES
from app.config import ConfigurationError, get_settings
from app.db import get_engine, get_sessionmaker
from app.errors import DomainError

Handler = Callable[[argparse.Namespace], int]
KEEP_ALIVE_SECONDS = 75


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _migrate(_: argparse.Namespace) -> int:
    from app import migrate

    migrate.upgrade(get_engine())
    print("database is at the latest schema")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    from app import migrate, serving
    from app.ops import multiproc

    settings = get_settings()
    settings.resolved_secret_key()  # refuse to start without a usable secret, before forking
    if settings.is_sqlite:
        migrate.upgrade(get_engine())
    _print_setup_link(args.host, args.port)
    get_engine().dispose()  # the workers open their own connections
    # Set before the workers start (they inherit the environment): their request log, and
    # the directory where each writes its metrics for the others to add up.
    if args.no_access_log:
        os.environ["SAFEPREF_REQUEST_LOG"] = "false"
    directory, created = multiproc.prepare_multiprocess_dir()
    try:
        return serving.serve(
            args.host,
            args.port,
            args.workers,
            # Forwarded headers are the app's to judge (SAFEPREF_TRUSTED_PROXIES), and its
            # JSON line per request replaces uvicorn's access log.
            proxy_headers=False,
            log_level=args.log_level,
            access_log=False,
            # Longer than the idle limit of clients' and proxies' connection pools (httpx: 5 s,
            # common proxies: 60 s): with equal limits the server can close a kept-alive
            # connection just as a request is sent on it, and the client sees a reset (seen in
            # the concurrency test on a loaded machine).
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    finally:
        multiproc.remove_multiprocess_dir(directory, created=created)


def _print_setup_link(host: str, port: int) -> None:
    """With no admin in the database, prints a one-time link that creates the first one."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.auth.first_run import SETUP_PATH, issue_setup_token

    try:
        with get_sessionmaker().begin() as session:
            token = issue_setup_token(session)
    except SQLAlchemyError:  # a database not migrated yet: `safepref migrate` says more
        return
    if token is None:
        return
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    print(
        "safepref: no admin account yet. Open this one-time link to create the first one\n"
        f"  http://{shown}:{port}{SETUP_PATH}{token}\n"
        "(or run `safepref create-user NAME --role admin`)",
        flush=True,
    )


def _read_password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != first:
            raise DomainError("passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def _create_user(args: argparse.Namespace) -> int:
    from app.auth.service import create_user

    password = _read_password(args)
    with get_sessionmaker().begin() as session:
        create_user(session, args.username, password, args.role)
    print(f"created {args.role} {args.username}")
    return 0


def _create_users(args: argparse.Namespace) -> int:
    import csv

    from app.auth.bulk import create_accounts

    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such file")
    with get_sessionmaker().begin() as session:
        created = create_accounts(session, path.read_bytes())
    # Generated passwords are printed this once (CSV on stdout, to hand over); the file's own
    # passwords are not repeated.
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["username", "role", "password"])
    for row in created:
        out.writerow([row.username, row.role, row.password if row.generated else ""])
    generated = sum(row.generated for row in created)
    print(
        f"created {len(created)} accounts; {generated} generated passwords are shown above "
        "only, never again",
        file=sys.stderr,
    )
    return 0


def _create_token(args: argparse.Namespace) -> int:
    from app.auth.service import create_token, get_user

    with get_sessionmaker().begin() as session:
        _, plain = create_token(session, get_user(session, args.username), args.name)
    # Only the token on stdout, so that scripts can capture it; it is not shown again.
    print(plain)
    return 0


def _import(args: argparse.Namespace) -> int:
    from app.imports.service import import_file
    from app.projects.service import create_project, get_project_by_name

    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such file")
    with get_sessionmaker().begin() as session, path.open("rb") as fp:
        project = get_project_by_name(session, args.project)
        if project is None:
            taxonomy = "beavertails-14" if args.format == "beavertails" else args.taxonomy
            project = create_project(session, args.project, taxonomy)
            print(f"created project {project.name!r} (id {project.id})")
        result = import_file(
            session,
            project,
            fp,
            settings=get_settings(),
            fmt=args.format,
            labels_as=args.labels_as,
        )
    print(
        f"{path}: format {result.format}: {result.items_created} items created, "
        f"{result.items_duplicate} duplicates skipped"
        + (
            f", {result.prompts_with_one_answer} prompts with a single answer left out"
            if result.prompts_with_one_answer
            else ""
        )
    )
    return 0


def _import_suggestions(args: argparse.Namespace) -> int:
    from app.projects.service import get_project_by_name
    from app.suggestions.service import check_origin, import_suggestions

    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such file")
    check_origin(args.origin)
    with get_sessionmaker().begin() as session, path.open("rb") as fp:
        project = get_project_by_name(session, args.project)
        if project is None:
            return _fail(f"no project {args.project!r}")
        result = import_suggestions(session, project, fp, args.origin, settings=get_settings())
    print(
        f"{path}: origin {args.origin!r}: {result.created} suggestions created, "
        f"{result.updated} updated, {result.removed} removed"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from app import migrate
    from app.demo.seed import seed_demo
    from app.models import Base

    settings = get_settings()
    engine = get_engine()
    if inspect(engine).get_table_names() and not args.reset:
        if settings.is_sqlite and settings.sqlite_path is not None:
            engine.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(str(settings.sqlite_path) + suffix).unlink(missing_ok=True)
        else:
            return _fail(
                "the database is not empty; `safepref demo --reset` drops every table first"
            )
    if args.reset:
        Base.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    migrate.upgrade(engine)
    with get_sessionmaker().begin() as session:
        summary = seed_demo(session)
    print(f"demo database ready: {settings.database_url}")
    print(f"project {summary.project_id} with {summary.items} items, batch {summary.batch_id}")
    print("demo accounts (demo only, change or deactivate them for real work):")
    for username, role, password in summary.accounts:
        print(f"  {role:<10} {username:<8} password: {password}")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from app.ops.backup import backup

    print(backup(get_settings(), Path(args.file)))
    return 0


def _restore(args: argparse.Namespace) -> int:
    from app.ops.backup import restore

    print(restore(get_settings(), Path(args.file)))
    print("check it with `safepref migrate` (a backup of an older version is upgraded)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safepref", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the web server (migrates a SQLite database first)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes; with more than one, each accepts on its own SO_REUSEPORT "
        "socket, so that connections spread evenly",
    )
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.add_argument(
        "--no-access-log",
        action="store_true",
        help="no JSON log line per request (errors are logged still)",
    )
    p.set_defaults(handler=_serve)

    p = sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    p.set_defaults(handler=_migrate)

    p = sub.add_parser("create-user", help="create an account")
    p.add_argument("username")
    p.add_argument("--role", choices=list(ROLES), required=True)
    p.add_argument("--password", help="default: read from standard input")
    p.set_defaults(handler=_create_user)

    p = sub.add_parser(
        "create-users",
        help="create accounts from a CSV file (header username,role[,password]); all or none",
    )
    p.add_argument("file")
    p.set_defaults(handler=_create_users)

    p = sub.add_parser("create-token", help="create an API token and print it (shown once)")
    p.add_argument("username")
    p.add_argument("--name", default="", help="what the token is for")
    p.set_defaults(handler=_create_token)

    from app.imports.formats import FORMAT_CHOICES, LABELS_AS

    p = sub.add_parser(
        "import", help="import a JSONL file (or .jsonl.gz, or Parquet) into a project"
    )
    p.add_argument("file")
    p.add_argument("--project", required=True, help="project name (created if missing)")
    p.add_argument(
        "--format",
        default="auto",
        choices=FORMAT_CHOICES,
    )
    p.add_argument("--labels-as", default="ignore", choices=LABELS_AS)
    p.add_argument(
        "--taxonomy",
        default="pku-saferlhf-19",
        help="preset for a new project (default %(default)s)",
    )
    p.set_defaults(handler=_import)

    p = sub.add_parser(
        "import-suggestions",
        help="replace an origin's model suggestions in a project with an NDJSON file",
    )
    p.add_argument("file")
    p.add_argument("--project", required=True, help="project name")
    p.add_argument("--origin", required=True, help="who made them (a model, a rule set)")
    p.set_defaults(handler=_import_suggestions)

    from app.exports.cli import add_parser as add_export_parser

    add_export_parser(sub)

    p = sub.add_parser(
        "backup",
        help="write a consistent backup of the database to FILE while it serves "
        "(SQLite: online backup; PostgreSQL: pg_dump)",
    )
    p.add_argument("file")
    p.set_defaults(handler=_backup)

    p = sub.add_parser("restore", help="restore a backup FILE into the configured, empty database")
    p.add_argument("file")
    p.set_defaults(handler=_restore)

    p = sub.add_parser("demo", help="a fresh database with demo data and demo accounts")
    p.add_argument("--reset", action="store_true", help="drop every table of a non-SQLite database")
    p.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (DomainError, ConfigurationError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
