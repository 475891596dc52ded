"""The end-to-end demo behind ``make demo``: each stage facetrec has, run on synthetic data.

It synthesises a catalogue and users with known interests, imports them as a dataset
directory, reads that back, splits it, prints what a person would check (statistics, split
sizes, one user's history next to the interests that generated it), then trains the
baselines and evaluates them side by side, including how many planted interests each covers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from facetrec.console import results_table, split_table, stage, stats_tables
from facetrec.data.dataset import Dataset
from facetrec.data.inspect import describe
from facetrec.data.split import leave_one_out, multi_target
from facetrec.data.synthetic import SynthConfig, SyntheticData, generate
from facetrec.evaluation.experiment import run_experiment
from facetrec.types import Event

DEMO_MODELS = ("pop", "itemknn", "ease", "als")
DEMO_PARAMS: dict[str, dict[str, object]] = {}
"""Models the demo trains, with any overrides that keep it quick."""


def run_demo(console: Console, out: Path, *, users: int, items: int, seed: int) -> None:
    console.rule("[bold]facetrec demo")
    with stage(console, f"synthesising {users:,} users x {items:,} items with planted interests (seed {seed})"):
        synthetic = generate(SynthConfig(n_users=users, n_items=items, seed=seed))
    directory = out / "synthetic"
    with stage(console, f"importing into {directory} (Parquet + manifest)"):
        synthetic.dataset.save(directory)
        synthetic.save_truth(directory)
    with stage(console, "reading the dataset back"):
        dataset = Dataset.load(directory)
    for table in stats_tables(describe(dataset)):
        console.print(table)
    with stage(console, "splitting: leave-one-out and multi-target"):
        splits = [leave_one_out(dataset.interactions), multi_target(dataset.interactions, seed=seed)]
    for split in splits:
        console.print(split_table(split))
    console.print(_user_table(synthetic, dataset))
    with stage(console, f"training and evaluating {', '.join(DEMO_MODELS)} (leave-one-out, full ranking)"):
        experiment = run_experiment(
            dataset,
            list(DEMO_MODELS),
            params=DEMO_PARAMS,
            seed=seed,
            first_only=True,
            interests=(synthetic.item_topic, synthetic.interest_matrix()),
        )
    console.print(results_table(experiment))
    console.print(
        f"\n[bold]done.[/bold] dataset in {directory}; inspect it with `facetrec data inspect {directory}`; "
        f"evaluate more models with `facetrec evaluate --dataset {directory} --first-only`"
    )


def _user_table(synthetic: SyntheticData, dataset: Dataset) -> Table:
    """The most varied user's last events, each with the planted topic it came from."""
    user = int(np.argmax([len(t) for t in synthetic.user_topics]))
    data = dataset.interactions
    rows = np.flatnonzero(data.user_idx == user)[-12:]
    topics = ", ".join(synthetic.topic_names[t] for t in synthetic.user_topics[user])
    table = Table(title=f"user {data.users.id_of(user)}: planted interests = {topics}")
    for column in ("event", "item", "topic", "rating"):
        table.add_column(column)
    for row in rows:
        item = int(data.item_idx[row])
        rating = data.rating[row]
        table.add_row(
            Event(data.event[row]).name.lower(),
            dataset.catalog.title(item),
            synthetic.topic_names[synthetic.item_topic[item]],
            "" if np.isnan(rating) else f"{rating:g}",
        )
    return table
