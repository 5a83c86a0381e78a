"""`recsys features`: the online store's state and its rebuild from the offline store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(no_args_is_help=True, help="Feast's online store: status and rebuild.")
console = Console(stderr=True)


def _client_and_store(open_store: bool) -> tuple[object, object]:
    import redis

    from ingestion.feast_bridge import open_feature_store
    from ingestion.settings import get_ingest_settings

    s = get_ingest_settings()
    client = redis.Redis.from_url(s.redis_url, socket_timeout=10.0, socket_connect_timeout=5.0)
    return client, (open_feature_store(s.var_dir, s.redis_url) if open_store else None)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """What the store marker says: whole, missing (empty or never built) or restarted, and the key count."""
    from feature_repo import online_marker

    client, _ = _client_and_store(False)
    state = online_marker.check(client)
    keys = int(client.dbsize())  # type: ignore[attr-defined]
    when = datetime.fromtimestamp(state.at, UTC).isoformat(timespec="seconds") if state.at else None
    out = {"verdict": state.verdict, "materialized_at": when, "keys": keys}
    text = f"online store: {state.verdict}, {keys:,} keys, last rebuilt {when or 'never'}"
    typer.echo(json.dumps(out) if as_json else text)


@app.command()
def rebuild(
    if_needed: Annotated[
        bool,
        typer.Option("--if-needed", help="Only when the marker says the store is empty or Redis restarted."),
    ] = False,
) -> None:
    """Materialise every feature view's TTL window from the offline store into Redis, with progress."""
    from ingestion.rebuild import ALL_VIEWS
    from ingestion.rebuild import rebuild as run_rebuild

    client, store = _client_and_store(True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console)  # fmt: skip
    with bar:
        task = bar.add_task("rebuild", total=len(ALL_VIEWS))

        def step(view: str, done: int, _total: int) -> None:
            bar.update(task, completed=done, description=f"materialise {view}")

        report = run_rebuild(store, client, only_if_needed=if_needed, progress=step)
    if not report.ran:
        typer.echo(f"no rebuild: {report.reason}")
        return
    typer.echo(
        f"rebuilt {len(report.views)} views ({report.reason}) in {report.seconds:.1f} s: "
        f"{report.keys_before:,} -> {report.keys_after:,} keys"
    )
