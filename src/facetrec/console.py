"""Terminal output: a spinner per long stage and rich tables for dataset statistics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from facetrec.data.inspect import DatasetStats
from facetrec.data.split import Split
from facetrec.evaluation.experiment import Experiment


@contextmanager
def stage(console: Console, message: str) -> Iterator[None]:
    """Show a spinner while a stage runs, then a tick line with its duration."""
    start = time.perf_counter()
    with console.status(f"{message}…"):
        yield
    console.print(f"[green]✓[/green] {message} [dim]({time.perf_counter() - start:.1f} s)[/dim]")


def _date(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


def stats_tables(stats: DatasetStats) -> list[Table]:
    """Overview, distributions, events/ratings and field coverage as separate tables."""
    overview = Table(title=f"dataset {stats.name!r}", show_header=False)
    overview.add_column("what")
    overview.add_column("value", justify="right")
    for label, value in [
        ("interactions", f"{stats.interactions:,}"),
        ("users", f"{stats.users:,}"),
        ("items", f"{stats.items:,}"),
        ("density", f"{stats.density:.4%}"),
        ("time span", f"{_date(stats.first_time)} .. {_date(stats.last_time)}"),
        ("items without interactions", f"{stats.cold_items:,}"),
        ("events on top 10 % of items", f"{stats.top10_share:.1%}"),
        ("popularity Gini", f"{stats.gini:.3f}"),
    ]:
        overview.add_row(label, value)

    spread = Table(title="distributions")
    spread.add_column("")
    for name in ("mean", "min", "p25", "median", "p75", "p90", "max"):
        spread.add_column(name, justify="right")
    for label, dist in (("events per user", stats.user_lengths), ("events per item", stats.item_popularity)):
        spread.add_row(label, f"{dist.mean:.1f}", *(f"{v:g}" for v in dist.quantiles.values()))

    kinds = Table(title="events and ratings")
    kinds.add_column("kind")
    kinds.add_column("count", justify="right")
    for name, count in stats.events.items():
        kinds.add_row(name, f"{count:,}")
    for value, count in stats.ratings.items():
        kinds.add_row(f"rating {value}", f"{count:,}")

    coverage = Table(title="item text and media coverage")
    coverage.add_column("field")
    coverage.add_column("share of items", justify="right")
    for name, share in stats.coverage.items():
        coverage.add_row(name, f"{share:.1%}")
    return [overview, spread, kinds, coverage]


def split_table(split: Split) -> Table:
    table = Table(title=f"split: {split.protocol}")
    table.add_column("part")
    table.add_column("events", justify="right")
    table.add_column("users", justify="right")
    sizes = split.sizes()
    for part, events, users in (
        ("train", "train_events", "train_users"),
        ("validation targets", "valid_targets", "valid_users"),
        ("test targets", "test_targets", "test_users"),
    ):
        table.add_row(part, f"{sizes[events]:,}", f"{sizes[users]:,}")
    return table


def results_table(experiment: Experiment) -> Table:
    """Metrics as rows and models as columns (with 95 % intervals), so many metrics still fit.

    The best model per metric is bold with a ``*``; a last row gives each model's ratio to the
    best on the main metric with its 95 % paired bootstrap interval.
    """
    from facetrec.evaluation.experiment import higher_is_better
    from facetrec.evaluation.report import ratio_text

    first = experiment.runs[0].test
    best = experiment.best()
    lower = [m for m in first.summary if not higher_is_better(m)]
    table = Table(
        title=f"{experiment.dataset}: {experiment.split.protocol}, {first.settings['ranking']} ranking, history "
        f"{'excluded' if first.settings['exclude_history'] else 'included'}, {first.settings['users']:,} users",
        caption="* best per metric"
        + (f" (lower is better for {', '.join(lower)})" if lower else "")
        + (
            f"; ratio: mean {experiment.main_metric} / the best model's, 95 % paired bootstrap interval"
            if experiment.ratios
            else ""
        ),
    )
    table.add_column("metric", no_wrap=True)
    for run in experiment.runs:
        table.add_column(run.kind, justify="right")
    for name in first.summary:
        cells = []
        for run in experiment.runs:
            value = run.test.summary[name]
            low, high = run.test.ci.get(name, (float("nan"), float("nan")))
            text = f"{value:.4f}"
            if run.kind in best.get(name, ()):
                text = f"[bold]{text}*[/bold]"
            cells.append(text + (f" [dim]±{(high - low) / 2:.4f}[/dim]" if low == low else ""))
        table.add_row(name, *cells)
    if experiment.ratios:
        table.add_row(
            f"ratio to best {experiment.main_metric}",
            *(escape(ratio_text(experiment.ratios.get(run.kind))) for run in experiment.runs),
        )
    table.add_row("fit seconds", *(f"{run.fit_seconds:.1f}" for run in experiment.runs))
    table.add_row("eval seconds", *(f"{run.test.seconds:.1f}" for run in experiment.runs))
    return table
