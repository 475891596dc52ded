"""The end-to-end demo behind ``make demo``: each stage facetrec has, run on synthetic data.

It synthesises a catalogue and users with known interests, imports them as a dataset
directory, reads that back, splits it, and prints what a person would check: statistics,
split sizes, and one user's history next to the interests that generated it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from facetrec.console import split_table, stage, stats_tables
from facetrec.data.dataset import Dataset
from facetrec.data.inspect import describe
from facetrec.data.split import leave_one_out, multi_target
from facetrec.data.synthetic import SynthConfig, SyntheticData, generate
from facetrec.types import Event


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
    console.print(
        f"\n[bold]done.[/bold] dataset in {directory}; inspect it again with `facetrec data inspect {directory}`"
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
