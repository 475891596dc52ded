"""Synthetic catalogue and users with known answers, for tests and the demo.

Items belong to hand-written topics (films, baking, jazz, news, ...) whose vocabularies barely
overlap; users hold 1-5 topic interests whose proportions drift from a start to an end mixture
over their timeline. The planted truth (item topics, user interests and start weights) is kept
beside the :class:`Dataset`, so a model can be checked against what it should recover.
Everything is vectorised over events and deterministic under ``SynthConfig.seed``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from facetrec.data.dataset import Dataset
from facetrec.errors import ConfigError, DataError
from facetrec.ids import Vocabulary
from facetrec.types import Event, Interactions, ItemCatalog, object_array


@dataclass(frozen=True)
class Topic:
    """One planted cluster: its words appear in no other topic's titles or descriptions."""

    name: str
    category: str
    price: float  # median price; 0 for free content such as news
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    tags: tuple[str, ...]


def _topic(name: str, category: str, price: float, nouns: str, adjectives: str, tags: str) -> Topic:
    return Topic(name, category, price, tuple(nouns.split()), tuple(adjectives.split()), tuple(tags.split()))


TOPICS: tuple[Topic, ...] = (
    _topic("sci-fi films", "Sci-Fi Films", 3.99,
           "starship android colony wormhole cyborg galaxy outpost replicant asteroid mothership nebula clone",
           "interstellar dystopian futuristic alien cosmic robotic orbital galactic cybernetic",
           "sci-fi cyberpunk time-travel aliens space-saga"),
    _topic("baking", "Baking Supplies", 14.0,
           "sourdough loaf whisk croissant muffin spatula brioche ganache pastry flour yeast scone tart meringue",
           "flaky buttery golden crusty fluffy glazed kneaded caramelised sugary proofed",
           "baking bread patisserie desserts homemade"),
    _topic("hiking gear", "Outdoor Gear", 60.0,
           "backpack tent carabiner headlamp boots compass rucksack tarp bivvy gaiters canteen stove crampons",
           "waterproof ultralight rugged breathable insulated windproof durable packable alpine",
           "hiking camping trekking mountaineering backcountry"),
    _topic("jazz", "Jazz", 9.99,
           "saxophone trumpet quartet ballad session improvisation trio bassline groove solo vinyl combo",
           "smoky swinging bluesy soulful syncopated mellow improvised cool modal sultry",
           "jazz bebop swing blue-note fusion"),
    _topic("crime fiction", "Crime Novels", 12.99,
           "detective murder inspector alibi suspect heist corpse witness conspiracy confession whodunit sleuth clue",
           "gripping sinister gritty twisted chilling suspenseful hardboiled deadly shadowy",
           "crime thriller mystery noir police-procedural"),
    _topic("football news", "Football", 0.0,
           "striker midfielder goalkeeper derby transfer penalty league manager stadium fixture hattrick relegation",
           "dramatic decisive unbeaten relegated promoted injured tactical defensive attacking clinical",
           "football soccer premier-league transfers matchday"),
    _topic("markets news", "Markets & Money", 0.0,
           "inflation mortgage dividend stocks pension budget savings bonds recession earnings portfolio tax",
           "bullish bearish fiscal volatile monetary taxable quarterly economic financial frugal",
           "finance markets investing economy money-tips"),
    _topic("gardening", "Garden", 18.0,
           "seeds compost trowel greenhouse perennials bulbs hedge shears planter mulch lawn roses herbs seedlings",
           "organic hardy flowering evergreen climbing fragrant potted heirloom",
           "gardening plants allotment landscaping horticulture"),
    _topic("board games", "Board Games", 35.0,
           "dice meeple expansion tokens boardgame campaign dungeon tiles scoreboard hourglass miniatures pawns",
           "cooperative competitive tabletop asymmetric replayable bluffing abstract thematic",
           "boardgames strategy co-op party game-night"),
    _topic("skincare", "Beauty", 22.0,
           "serum moisturiser cleanser toner sunscreen balm exfoliant facemask lotion retinol cream",
           "hydrating soothing nourishing gentle radiant unscented dermatological brightening",
           "skincare beauty selfcare glow cruelty-free"),
    _topic("classical music", "Classical", 11.99,
           "symphony concerto sonata orchestra overture requiem cantata nocturne opera aria prelude fugue conductor",
           "baroque romantic operatic orchestral choral majestic lyrical virtuosic harmonic",
           "classical symphonic chamber-music philharmonic maestro"),
    _topic("travel documentaries", "Travel Docs", 4.99,
           "expedition island safari voyage coastline rainforest desert journey archipelago glacier canyon lagoon",
           "breathtaking remote exotic scenic tropical ancient untouched nomadic arctic",
           "travel documentary wildlife adventure culture"),
    _topic("electronics", "Electronics", 250.0,
           "smartphone charger earbuds smartwatch tablet battery processor display camera headphones router laptop",
           "wireless bluetooth portable compact smart refurbished unlocked rechargeable",
           "gadgets tech mobile audio accessories"),
    _topic("picture books", "Children's Books", 7.99,
           "dragon bunny storybook alphabet teddy puppy fairy princess tractor dinosaur rhyme lullaby unicorn",
           "cuddly colourful illustrated sleepy giggly whimsical magical cheerful playful",
           "kids picture-books bedtime toddlers early-learning"),
    _topic("yoga and fitness", "Yoga & Fitness", 30.0,
           "mat dumbbells kettlebell leggings bands roller blocks strap hoodie treadmill pilates workout",
           "stretchy sweatproof nonslip supportive lightweight cushioned ergonomic mindful flexible",
           "yoga fitness strength mindfulness home-gym"),
)  # fmt: skip

GENERIC_WORDS: tuple[str, ...] = ("new", "classic", "essential", "premium", "popular")
"""Shared by every topic, so that titles alone do not trivially separate topics."""

POSITIVE_PHRASES: tuple[str, ...] = (
    "Love it!", "Absolutely brilliant.", "Highly recommend.", "Exceeded my expectations.",
    "Five stars from me.", "Wonderful quality.",
)  # fmt: skip
NEGATIVE_PHRASES: tuple[str, ...] = (
    "Very disappointed.", "Would not recommend.", "Waste of money.", "Broke almost immediately.",
    "Really poor quality.", "Sent it straight back.",
)  # fmt: skip
MIXED_PHRASES: tuple[str, ...] = (
    "It's okay.", "Decent but not great.", "Some good parts, some bad.", "Average overall.", "Fine for the price.",
)  # fmt: skip
_REVIEW_PHRASES = {  # stars -> (first sentence list, last sentence list): the wording follows the rating
    5: (POSITIVE_PHRASES, POSITIVE_PHRASES),
    4: (POSITIVE_PHRASES, MIXED_PHRASES),
    3: (MIXED_PHRASES, MIXED_PHRASES),
    2: (NEGATIVE_PHRASES, MIXED_PHRASES),
    1: (NEGATIVE_PHRASES, NEGATIVE_PHRASES),
}
_REVIEW_WHEN = ("", " last week", " on a friend's tip", " after a recommendation")

_NOISE = 0.05  # share of events on a random topic, interest or not
_ZIPF = 1.0  # exponent of within-topic item popularity: weight 1 / (rank + 1) ** _ZIPF
_DIRICHLET = 1.5  # concentration of the start and end interest mixtures
_KINDS = np.array([Event.VIEW, Event.CLICK, Event.CART, Event.PURCHASE, Event.RATE], np.int8)
_KIND_P = (0.45, 0.30, 0.10, 0.07, 0.08)
_DAY = 86_400


@dataclass(frozen=True)
class SynthConfig:
    """How big the synthetic world is and how its users behave."""

    n_users: int = 1000
    """Number of users; each gets at least 3 events."""
    n_items: int = 500
    """Number of catalogue items, spread evenly over the topics."""
    n_topics: int = 12
    """Number of topics (planted item clusters) used, from 2 to ``len(TOPICS)``."""
    min_interests: int = 1
    """Fewest topics a user is interested in."""
    max_interests: int = 5
    """Most topics a user is interested in (at most ``n_topics``)."""
    mean_events_per_user: float = 40.0
    """Mean events per user (at least 3); counts are over-dispersed, so activity is long-tailed."""
    start: str = "2024-01-01"
    """First day of the timeline (ISO date, UTC)."""
    days: int = 180
    """Length of the timeline in days."""
    new_item_share: float = 0.1
    """Share of items created late in the timeline (0 to 0.5); they get events only after creation."""
    review_share: float = 0.2
    """Share of rating events that also carry a written review (0 to 1)."""
    seed: int = 0
    """Seed of the numpy Generator: the same config gives the same data."""

    def __post_init__(self) -> None:
        _require("n_users", self.n_users, 1)
        _require("n_topics", self.n_topics, 2, len(TOPICS))
        _require("n_items", self.n_items, self.n_topics)
        _require("min_interests", self.min_interests, 1, self.n_topics)
        _require("max_interests", self.max_interests, self.min_interests, self.n_topics)
        _require("mean_events_per_user", self.mean_events_per_user, 3.0, 1e5, integer=False)
        _require("days", self.days, 1, 36_500)
        _require("new_item_share", self.new_item_share, 0.0, 0.5, integer=False)
        _require("review_share", self.review_share, 0.0, 1.0, integer=False)
        _require("seed", self.seed, 0)
        _start_seconds(self.start)


def _start_seconds(start: object) -> int:
    """Epoch seconds of an ISO date string, or a ConfigError naming ``start``."""
    try:
        if isinstance(start, str):
            return int(np.datetime64(start, "s").astype(np.int64))
    except ValueError:
        pass
    raise ConfigError(f"SynthConfig.start: expected an ISO date like '2024-01-01', got {start!r}")


def _require(name: str, value: object, lo: float, hi: float | None = None, integer: bool = True) -> None:
    """Raise a ConfigError naming ``name`` unless ``lo <= value <= hi`` (and an int when ``integer``)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and lo <= value and (hi is None or value <= hi)
    if not ok:
        what = "an integer" if integer else "a number"
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ConfigError(f"SynthConfig.{name}: must be {what} {bounds}, got {value!r}")


@dataclass(frozen=True, eq=False)
class SyntheticData:
    """A generated dataset plus the truth it was generated from, aligned with its indices."""

    dataset: Dataset
    item_topic: np.ndarray  # int32 topic index of each item idx
    user_topics: tuple[np.ndarray, ...]  # per user idx, the topic indices of their interests
    user_weights: tuple[np.ndarray, ...]  # per user idx, interest proportions (sum 1) at their first event
    topic_names: tuple[str, ...]

    def interest_matrix(self) -> sp.csr_matrix:
        """Users x topics, 1 where the topic is one of the user's planted interests."""
        rows = np.repeat(np.arange(len(self.user_topics)), [len(t) for t in self.user_topics])
        cols = np.concatenate(self.user_topics) if self.user_topics else np.zeros(0, np.int32)
        shape = (len(self.user_topics), len(self.topic_names))
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)

    def save(self, directory: str | Path) -> Path:
        """Write the dataset and its truth files to ``directory``; returns the manifest path."""
        manifest = self.dataset.save(directory)
        self.save_truth(directory)
        return manifest

    def save_truth(self, directory: str | Path) -> None:
        """Write truth_items.parquet, truth_users.parquet and truth.json into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        items = pa.table({"item_id": pa.array(self.dataset.catalog.items.ids, pa.string()),
                          "topic": pa.array(self.item_topic, pa.int32())})  # fmt: skip
        users = pa.table({
            "user_id": pa.array(self.dataset.interactions.users.ids, pa.string()),
            "topics": pa.array([t.tolist() for t in self.user_topics], pa.list_(pa.int32())),
            "weights": pa.array([w.tolist() for w in self.user_weights], pa.list_(pa.float64())),
        })  # fmt: skip
        pq.write_table(items, out / "truth_items.parquet")
        pq.write_table(users, out / "truth_users.parquet")
        (out / "truth.json").write_text(json.dumps({"topic_names": list(self.topic_names)}, indent=2) + "\n")

    @classmethod
    def load_truth(
        cls, directory: str | Path
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[str, ...]]:
        """``(item_topic, user_topics, user_weights, topic_names)`` in the file's item and user order."""
        root = Path(directory)
        for name in ("truth_items.parquet", "truth_users.parquet", "truth.json"):
            if not (root / name).is_file():
                raise DataError(f"{root}: {name} is missing; write it with SyntheticData.save_truth")
        item_topic = pq.read_table(root / "truth_items.parquet").column("topic").to_numpy().astype(np.int32)
        users = pq.read_table(root / "truth_users.parquet")
        topics = tuple(np.asarray(t, np.int32) for t in users.column("topics").to_pylist())
        weights = tuple(np.asarray(w, np.float64) for w in users.column("weights").to_pylist())
        names = tuple(json.loads((root / "truth.json").read_text())["topic_names"])
        return item_topic, topics, weights, names

    @classmethod
    def load(cls, directory: str | Path) -> SyntheticData:
        """Read what :meth:`save` wrote, checking that the truth matches the dataset's ids."""
        dataset = Dataset.load(directory)
        item_topic, topics, weights, names = cls.load_truth(directory)
        root = Path(directory)
        for file, vocab in (("truth_items", dataset.catalog.items), ("truth_users", dataset.interactions.users)):
            ids = pq.read_table(root / f"{file}.parquet").column(0).to_numpy(zero_copy_only=False)
            if not np.array_equal(ids, vocab.ids):
                raise DataError(f"{root / file}.parquet: ids do not match the dataset's {vocab.name} vocabulary")
        return cls(dataset, item_topic, topics, weights, names)


def _table(words: list[tuple[str, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged word lists as a padded object table plus each row's length, for vectorised draws."""
    lens = np.array([len(w) for w in words])
    tab = np.full((len(words), lens.max()), "", dtype=object)
    for k, row in enumerate(words):
        tab[k, : len(row)] = row
    return tab, lens


def _pick(lens: np.ndarray, rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    """A uniform position below each of ``lens``, different from ``avoid`` where that is given."""
    if avoid is None:
        return (rng.random(len(lens)) * lens).astype(np.intp)
    return (avoid + 1 + (rng.random(len(lens)) * (lens - 1)).astype(np.intp)) % lens


_cap = np.frompyfunc(str.capitalize, 1, 1)
_WORD_FIELDS = ("nouns", "adjectives", "tags")


def _catalog(topics: tuple[Topic, ...], topic: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Titles, descriptions, tags and prices drawn from each item's topic vocabulary."""
    (nouns, n_len), (adjs, a_len), (tags, t_len) = (_table([getattr(t, f) for t in topics]) for f in _WORD_FIELDS)
    generic = np.array(GENERIC_WORDS, dtype=object)
    n = len(topic)
    noun, adj, tag = _pick(n_len[topic], rng), _pick(a_len[topic], rng), _pick(t_len[topic], rng)
    noun2, adj2, tag2 = _pick(n_len[topic], rng, noun), _pick(a_len[topic], rng, adj), _pick(t_len[topic], rng, tag)
    prefix = np.where(rng.random(n) < 0.4, _cap(generic[rng.integers(len(generic), size=n)]) + " ", "")
    title = prefix + _cap(adjs[topic, adj]) + " " + _cap(nouns[topic, noun])
    pitch = _cap(generic[rng.integers(len(generic), size=n)]) + " for " + tags[topic, tag] + " fans."
    description = _cap(adjs[topic, adj2]) + " " + nouns[topic, noun] + " with " + nouns[topic, noun2] + ". " + pitch
    median = np.array([t.price for t in topics])[topic]
    price = np.where(median > 0, np.floor(median * rng.lognormal(0.0, 0.4, n)) + 0.99, 0.0)
    return {
        "title": title,
        "description": description,
        "tags": object_array(zip(tags[topic, tag], tags[topic, tag2], strict=True)),
        "categories": object_array((topics[k].category,) for k in topic),
        "price": price,
    }


def _reviews(stars: np.ndarray, topic: np.ndarray, topics: tuple[Topic, ...], rng: np.random.Generator) -> np.ndarray:
    """Short review texts whose sentiment agrees with ``stars`` (1-5) and that name a ``topic`` noun."""
    nouns, n_len = _table([t.nouns for t in topics])
    noun = nouns[topic, _pick(n_len[topic], rng)]
    when = np.array(_REVIEW_WHEN, dtype=object)[rng.integers(len(_REVIEW_WHEN), size=len(stars))]
    first, last = np.empty(len(stars), object), np.empty(len(stars), object)
    for s, (head, tail) in _REVIEW_PHRASES.items():
        rows = np.flatnonzero(stars == s)
        i = _pick(np.full(len(rows), len(head)), rng)
        j = _pick(np.full(len(rows), len(tail)), rng, i if head is tail else None)
        first[rows], last[rows] = np.array(head, object)[i], np.array(tail, object)[j]
    return first + " Came for the " + noun + when + ". " + last


def generate(config: SynthConfig | None = None) -> SyntheticData:
    """Generate a catalogue, users and their events with planted topics and drifting interests."""
    cfg = config or SynthConfig()
    rng = np.random.default_rng(cfg.seed)
    topics = TOPICS[: cfg.n_topics]
    n_top, n_items, n_users = cfg.n_topics, cfg.n_items, cfg.n_users
    start = _start_seconds(cfg.start)
    span_s = cfg.days * _DAY

    # Items: topics spread evenly, a random popularity rank within each topic, the top one always old.
    item_topic = rng.permutation(np.arange(n_items) % n_top).astype(np.int32)
    by_topic = np.lexsort((rng.random(n_items), item_topic))
    first = np.searchsorted(item_topic[by_topic], np.arange(n_top))
    rank = np.empty(n_items, np.int64)
    rank[by_topic] = np.arange(n_items) - first[item_topic[by_topic]]
    created = start - rng.uniform(30, 720, n_items) * _DAY
    new = np.flatnonzero(rank > 0)
    new = rng.choice(new, size=min(len(new), round(cfg.new_item_share * n_items)), replace=False)
    created[new] = start + rng.uniform(0.55, 0.9, len(new)) * span_s
    created = np.floor(created)
    quality = rng.normal(0.0, 0.7, n_items)
    cum = np.cumsum(1.0 / (rank[by_topic] + 1.0) ** _ZIPF)
    before = np.concatenate([[0.0], cum])[first]
    total = np.concatenate([before[1:], [cum[-1]]]) - before
    key = item_topic[by_topic] + (cum - before[item_topic[by_topic]]) / total[item_topic[by_topic]]

    def draw(topic: np.ndarray) -> np.ndarray:  # Zipf-popular item of each topic, one search for all
        return by_topic[np.searchsorted(key, topic + rng.random(len(topic)), side="right")]

    # Users: 1-5 interests favouring popular topics (Gumbel top-k), start and end mixtures.
    k = rng.integers(cfg.min_interests, cfg.max_interests + 1, n_users)
    topic_logit = -0.7 * np.log1p(rng.permutation(n_top))
    chosen = np.argsort(-(topic_logit + rng.gumbel(size=(n_users, n_top))), axis=1)[:, : cfg.max_interests]
    held = np.arange(cfg.max_interests) < k[:, None]
    w0, w1 = (rng.gamma(_DIRICHLET, size=held.shape) * held for _ in range(2))
    w0, w1 = w0 / w0.sum(1, keepdims=True), w1 / w1.sum(1, keepdims=True)

    # Events: counts, times within each user's active window, topic from the drifting mixture.
    extra = cfg.mean_events_per_user - 3
    counts = 3 + rng.negative_binomial(2, 2 / (2 + extra), n_users)
    user = np.repeat(np.arange(n_users), counts)
    s = rng.random(len(user))
    order = np.lexsort((s, user))
    s = s[order]
    t0 = rng.uniform(0.0, 0.5, n_users) * span_s
    width = rng.uniform(0.3, 1.0, n_users) * (span_s - t0)
    ts = start + np.floor(t0[user] + s * width[user]).astype(np.int64)
    mix = np.cumsum((1 - s)[:, None] * w0[user] + s[:, None] * w1[user], axis=1)
    slot = np.minimum((mix < rng.random(len(user))[:, None] * mix[:, -1:]).sum(1), k[user] - 1)
    topic = chosen[user, slot]
    noise = np.flatnonzero(rng.random(len(user)) < _NOISE)
    topic[noise] = rng.integers(n_top, size=len(noise))
    item = draw(topic)
    for _ in range(20):  # redraw events that hit an item before its creation
        late = np.flatnonzero(created[item] > ts)
        if not late.size:
            break
        item[late] = draw(topic[late])
    item = np.where(created[item] > ts, by_topic[first[topic]], item)

    # Kinds, ratings and reviews: ratings are higher on interest topics and for better items.
    event = _KINDS[rng.choice(len(_KINDS), size=len(user), p=_KIND_P)]
    rated = np.flatnonzero(event == Event.RATE)
    in_interest = ((chosen[user[rated]] == item_topic[item[rated], None]) & held[user[rated]]).any(1)
    stars = np.clip(np.rint(3.6 + quality[item[rated]] + np.where(in_interest, 0.5, -1.4)
                            + rng.normal(0.0, 1.0, len(rated))), 1, 5)  # fmt: skip
    rating = np.full(len(user), np.nan, np.float32)
    rating[rated] = stars
    reviewed = rated[rng.random(len(rated)) < cfg.review_share]
    event[reviewed] = Event.REVIEW
    review = np.full(len(user), None, dtype=object)
    review[reviewed] = _reviews(rating[reviewed].astype(int), item_topic[item[reviewed]], topics, rng)

    width_id = max(5, len(str(max(n_users, n_items))))
    users = Vocabulary([f"u{i:0{width_id}d}" for i in range(1, n_users + 1)], "user")
    items = Vocabulary([f"i{i:0{width_id}d}" for i in range(1, n_items + 1)], "item")
    fields = _catalog(topics, item_topic, rng)
    catalog = ItemCatalog(
        items=items,
        text={"title": fields["title"], "description": fields["description"]},
        categories=fields["categories"],
        tags=fields["tags"],
        numeric={"price": fields["price"]},
        created_at=created,
    )
    interactions = Interactions(user, item, ts, users, items, event=event, rating=rating, review=review).sorted()
    dataset = Dataset("synthetic", interactions, catalog, extras={"synthetic_config": asdict(cfg)})
    return SyntheticData(
        dataset=dataset,
        item_topic=item_topic,
        user_topics=tuple(chosen[u, : k[u]].astype(np.int32) for u in range(n_users)),
        user_weights=tuple(w0[u, : k[u]] for u in range(n_users)),
        topic_names=tuple(t.name for t in topics),
    )
