"""The end-to-end demo behind ``make demo``: each stage facetrec has, run on synthetic data.

It synthesises a catalogue and users with known interests, imports them as a dataset
directory, reads that back, splits it, prints what a person would check (statistics, split
sizes, one user's history next to the interests that generated it), then trains the
baselines and the facet model and evaluates them side by side, including how many planted
interests each covers. Finally it trains the facet model on all events, saves a bundle, and
shows one user's learned interests and recommendations (grouped by interest, explained) next
to their history.

``facetrec demo --multimodal`` (:func:`run_multimodal_demo`) runs the image and audio path: a
picture and a sound per item (drawn and synthesised: a colour and a pitch per planted topic),
encoded by image and audio models (random-weight ones made on the spot unless real ones are
given), fused with the ID and the text in the facet model, and each recommendation explained
with the modality that made it match.
"""

from __future__ import annotations

from dataclasses import replace
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
from facetrec.recommender import Recommender, fit_recommender
from facetrec.types import Event, Query

FACET_PARAMS: dict[str, object] = {"hidden": 32, "lr": 3e-3, "dropout": 0.2, "epochs": 15, "patience": 3}
DEMO_MODELS = ("pop", "itemknn", "ease", "als", "facet")
DEMO_PARAMS: dict[str, dict[str, object]] = {"facet": FACET_PARAMS}
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
    bundle = out / "bundle"
    recommender = _bundle(console, dataset, FACET_PARAMS, bundle, seed)
    user = str(dataset.interactions.users.id_of(_most_varied(synthetic)))
    for table in _recommendation_tables(recommender, user):
        console.print(table)
    console.print(
        f"\n[bold]done.[/bold] dataset in {directory}; inspect it with `facetrec data inspect {directory}`; "
        f"evaluate more models with `facetrec evaluate --dataset {directory} --first-only`; "
        f"recommend with `facetrec recommend --bundle {bundle} --user {user} --explain`"
    )


MULTIMODAL_PARAMS: dict[str, object] = {**FACET_PARAMS, "fusion": "attention"}


def run_multimodal_demo(
    console: Console,
    out: Path,
    *,
    users: int,
    items: int,
    seed: int,
    image_model: str | None = None,
    audio_model: str | None = None,
) -> None:
    """The image/audio path end to end: files -> encoders -> item vectors -> fusion -> explained lists."""
    from facetrec.content.media import media_encoder
    from facetrec.data.vectors import with_item_vectors
    from facetrec.testing import media

    console.rule("[bold]facetrec demo: images and audio")
    with stage(console, f"synthesising {users:,} users x {items:,} items with planted interests (seed {seed})"):
        synthetic = generate(SynthConfig(n_users=users, n_items=items, seed=seed))
    folder = out / "media"
    catalog = synthetic.dataset.catalog
    with stage(console, f"drawing a picture and synthesising a sound for each item in {folder}"):
        images, sounds = [], []
        for idx, topic in enumerate(synthetic.item_topic):  # a colour and a pitch per topic, shapes at random
            name = str(catalog.items.id_of(idx))
            colour = media.PALETTE[int(topic) % len(media.PALETTE)]
            media.draw_item(folder / f"{name}.png", colour, ("square", "circle")[idx % 2])
            media.tone(folder / f"{name}.wav", 220.0 * 2 ** (int(topic) / 4))
            images.append(f"{name}.png")
            sounds.append(f"{name}.wav")
    if image_model is None or audio_model is None:
        console.print("[dim]no --image-model/--audio-model given: using random-weight encoders made here[/dim]")
    image_model = image_model or str(media.save_random_image_model(out / "models" / "image", seed))
    audio_model = audio_model or str(media.save_random_audio_model(out / "models" / "audio", seed))
    catalog = replace(catalog, image=np.array(images, object), audio=np.array(sounds, object))
    data = replace(synthetic.dataset, catalog=catalog)
    for modality, model in (("image", image_model), ("audio", audio_model)):
        with stage(console, f"encoding every item's {modality} with {model}"):
            found = media_encoder(modality, model, root=str(folder), store_dir=str(out / "cache")).encode(catalog)
        console.print(f"  {found.summary()}")
        data = with_item_vectors(
            data, modality, found.embeddings.vectors, [found.summary()], found.embeddings.encoder_id
        )
    directory = out / "multimodal"
    with stage(console, f"importing into {directory} with the image and audio vectors"):
        data.save(directory)
        dataset = Dataset.load(directory)
    with stage(console, "training EASE and the facet model (ID + text + image + audio, attention fusion)"):
        experiment = run_experiment(
            dataset, ["ease", "facet"], params={"facet": MULTIMODAL_PARAMS}, seed=seed, first_only=True
        )
    console.print(results_table(experiment))
    bundle = out / "multimodal-bundle"
    recommender = _bundle(console, dataset, MULTIMODAL_PARAMS, bundle, seed)
    user = str(dataset.interactions.users.id_of(_most_varied(synthetic)))
    found = recommender.recommend(Query(user_id=user, n=10), explain=True)
    listing = Table(title=f"user {user}: recommendations, with the modality that made each match")
    for column in ("item", "modality", "why"):
        listing.add_column(column)
    for r in range(len(found)):
        modality = str(found.fields["modality"][r]) if "modality" in found.fields else "-"
        why = str(found.fields["explanation"][r]) if "explanation" in found.fields else ""
        listing.add_row(recommender.catalog.title(int(found.idx[r])), modality, why)
    console.print(listing)
    console.print(
        f"\n[bold]done.[/bold] dataset with image and audio vectors in {directory}; "
        f"recommend with `facetrec recommend --bundle {bundle} --user {user} --explain`"
    )


def _bundle(console: Console, dataset: Dataset, params: dict[str, object], bundle: Path, seed: int) -> Recommender:
    """The facet model trained on every event, saved as a bundle."""
    with stage(console, f"training the facet model on every event and saving a bundle to {bundle}"):
        recommender = fit_recommender(dataset, "facet", params, seed=seed, first_only=True)
        recommender.save(bundle)
    return recommender


def _most_varied(synthetic: SyntheticData) -> int:
    return int(np.argmax([len(t) for t in synthetic.user_topics]))


def _recommendation_tables(recommender: Recommender, user: str) -> list[Table]:
    """The user's learned interests (label, weight, the history items each attends to most) and
    their top 10 with MMR diversity, each with the interest it serves and why."""
    query = Query(user_id=user, n=10)
    state, labels = recommender.interests(query)
    interests = Table(title=f"user {user}: learned interests")
    for column in ("interest", "weight", "formed mostly from"):
        interests.add_column(column)
    for k in range(state.k):
        top = state.history_idx[np.argsort(-state.attention[k], kind="stable")[:3]]
        names = ", ".join(recommender.catalog.title(int(i)) for i in top)
        interests.add_row(labels[k], f"{state.weights[k]:.2f}", names)
    found = recommender.recommend(query, explain=True, diversity="mmr", lam=0.7)
    listing = Table(title=f"user {user}: recommendations (MMR, lambda 0.7)")
    for column in ("interest", "item", "why"):
        listing.add_column(column)
    for r in range(len(found)):
        k = int(found.fields["interest"][r])
        label = labels[k] if 0 <= k < len(labels) else "popular"
        listing.add_row(label, recommender.catalog.title(int(found.idx[r])), str(found.fields["explanation"][r]))
    return [interests, listing]


def _user_table(synthetic: SyntheticData, dataset: Dataset) -> Table:
    """The most varied user's last events, each with the planted topic it came from."""
    user = _most_varied(synthetic)
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
