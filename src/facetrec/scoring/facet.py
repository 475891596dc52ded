"""The facet scorer: several interest vectors per user over language-model item vectors.

The network (item tower, multi-interest encoder, routing and loss) reads top to bottom in
:mod:`facetrec.interests.facet_model`; this module turns item text into its frozen content
vectors, trains it with the shared loop (:func:`facetrec.training.fit_loop`) and answers with
it: scores, user states, item vectors and calibrated preferences. Training predicts the next
item at every position with target-aware routing: by default a mixture of K softmaxes under a
learned gate, so each interest learns from a target in proportion to its responsibility for
it. An item scores by its log-probability under the mixture.

``sasrec-text`` (:class:`SASRecTextScorer`) is the same model with one interest read from the
last state and no time/event/signal inputs: SASRec+ with fused text + ID item vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Self

import numpy as np
import torch
from torch import nn

from facetrec.content.base import l2_normalize
from facetrec.content.encoders import POOLINGS as POOLINGS_TEXT
from facetrec.content.item_encoder import TextItemEncoder, centre
from facetrec.content.tuning import TUNINGS, TextTuner, export_merged, merged_directory
from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.interests.facet_model import (
    FUSIONS,
    POOLINGS,
    ROUTINGS,
    FacetNet,
    FacetNetConfig,
    interest_log_probs,
    interest_offsets,
)
from facetrec.interests.features import EventFeatures
from facetrec.interests.sequences import (
    EVAL_BATCH,
    NextItemValidation,
    SequenceModelConfig,
    TrainingWindows,
    training_rows,
    trimmed,
)
from facetrec.scoring.base import Capabilities, Scorer
from facetrec.scoring.propensity import ipw_weights
from facetrec.training import fit_loop, load_flat_weights, seed_everything
from facetrec.types import Interactions, ItemCatalog, UserState


@dataclass(frozen=True)
class FacetConfig(SequenceModelConfig):
    interests: int = 4
    """K, the number of interest vectors per user."""
    pooling: str = "hybrid"
    """"hybrid" (interest 0 is the last state, the others self-attentive heads), "attention" (K
    heads) or "last" (the last state only; K = 1)."""
    interest_values: str = "states"
    """What the attention heads average: "states" (the Transformer's contextual states, each a
    next-item prediction) or "items" (the history's raw item vectors). With hybrid pooling,
    "states" measured better on both accuracy and interest recovery (docs/facet.md)."""
    routing: str = "soft"
    """How a next item trains and scores the interests. "soft": a mixture of K softmaxes weighted
    by a learned gate; each interest is trained in proportion to its responsibility for the
    target and an item scores by the mixture's log-probability. "hard" (ComiRec): only the
    interest closest to the target is trained and an item scores by its best dot product.
    docs/facet.md has the measurements."""
    adaptive: bool = True
    """User states drop interests that no recent history item prefers (fewer for focused users)."""
    encoder: str = "minilm"
    """Item text encoder as in the content scorer ("minilm", "minilm-onnx-int8", "lexical", a local
    model path), or "none" for an ID-only model."""
    max_tokens: int = 128
    """Item texts are truncated to this many tokens before encoding."""
    store_dir: str | None = None
    """Embedding cache directory: items already encoded there are not encoded again."""
    reviews: bool = True
    """When the training events carry review text, embed each item's reviews (sentiment-weighted,
    training events only) as a second content modality beside its text."""
    item_vectors: str = "all"
    """Which precomputed catalogue vector sets (``ItemCatalog.vectors``: image, audio, ...) join
    as content modalities: "all" the catalogue has, "none", or names joined by commas."""
    use_id: bool = True
    """Fuse a learned item-ID embedding with the content vectors (items seen in training only)."""
    id_dropout: float = 0.1
    """Training drops an item's ID with this probability, so the content path also works alone."""
    fusion: str = "gated"
    """How modalities are combined (docs/multimodal.md): "gated" (a learned gate per item and
    dimension), "weighted" (one weight per modality, learned or ``fusion_weights``), "gate"
    (cosine-similarity gating), "attention" (a learned query over an item's modalities) or
    "concat" (concatenation + projection)."""
    interest_fusion: bool = False
    """Each interest also weighs the item's modalities its own way (attention over modalities per
    interest: a music interest can lean on audio, a cooking one on pictures); item vectors are
    then the modality parts side by side (modalities x hidden wide)."""
    fusion_weights: str = ""
    """Fixed weights for fusion "weighted", e.g. "id=2,image=1,audio=1" (modalities: text,
    reviews, each vector set's name, id; an unnamed one weighs 1); empty: learned weights."""
    experts: int = 4
    """Whitening experts in each content adapter."""
    time_features: bool = True
    """Embed the time gap since the previous event."""
    event_features: bool = True
    """Embed the event type (click, view, cart, purchase, rate, review)."""
    signal_features: bool = True
    """Feed each event's weight (sentiment), centred rating and has-rating flag."""
    distinct_weight: float = 0.1
    """Weight of the penalty on the squared cosine between a user's interests."""
    future_window: int = 1
    """Above 1, each position also learns to predict one event drawn uniformly from the next
    ``future_window`` (a longer-horizon target, which other interests than the current one explain;
    docs/facet.md has the measurements)."""
    future_weight: float = 1.0
    """Weight of that longer-horizon loss next to the next-item loss."""
    text_tuning: str = "frozen"
    """Train the text encoder with the model (docs/lm_tuning.md): "frozen" (default: the encoder's
    vectors are fixed), or a peft adapter inside it, "lora", "adalora" or "ia3", trained by the
    next-item loss. Needs a language-model ``encoder`` ("minilm" or a model path or Hub name)."""
    text_rank: int = 8
    """LoRA rank (AdaLoRA: the average rank it prunes to, from 1.5 times it)."""
    text_alpha: float = 16.0
    """LoRA/AdaLoRA scale numerator: the adapter's update is scaled by ``text_alpha / text_rank``."""
    text_dropout: float = 0.05
    """Dropout on the LoRA/AdaLoRA adapter's input."""
    text_targets: str = ""
    """Layers to adapt, module names joined by commas ("query,value"); "" takes peft's default for
    the architecture (BERT: query, value; GPT-2: c_attn; Llama/Qwen: q_proj, v_proj)."""
    text_pooling: str = "auto"
    """Token pooling of the tuned encoder: "auto" (a sentence-transformers model's own, else "mean"
    for encoders and "last" for decoder-only LMs), "mean", "cls" or "last"."""
    text_items: int = 256
    """Most items a training step encodes with gradients (its targets first, then its history
    items); every other item reads the bank of vectors refreshed once per epoch."""
    text_checkpointing: bool = False
    """Gradient checkpointing in the tuned encoder: less memory for large models, more time."""

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        for field in ("interests", "experts", "future_window"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}.{field}: must be an integer >= 1, got {value!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"{name}.pooling: must be one of {POOLINGS}, got {self.pooling!r}")
        if self.pooling == "last" and self.interests != 1:
            raise ConfigError(f"{name}.interests: pooling 'last' gives one interest; set interests = 1")
        if self.routing not in ROUTINGS:
            raise ConfigError(f"{name}.routing: must be one of {ROUTINGS}, got {self.routing!r}")
        if self.interest_values not in ("items", "states"):
            raise ConfigError(f"{name}.interest_values: must be 'items' or 'states', got {self.interest_values!r}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"{name}.fusion: must be one of {FUSIONS}, got {self.fusion!r}")
        if self.encoder == "none" and not self.use_id and self.item_vectors == "none":
            raise ConfigError(f"{name}: with encoder and item_vectors 'none' the model needs use_id = true")
        if not isinstance(self.item_vectors, str) or not self.item_vectors.strip():
            raise ConfigError(
                f"{name}.item_vectors: 'all', 'none' or names joined by commas, got {self.item_vectors!r}"
            )
        weights = self.fixed_weights()
        if weights and self.fusion != "weighted":
            raise ConfigError(f"{name}.fusion_weights: fixed weights need fusion 'weighted', not {self.fusion!r}")
        if not 0 <= self.id_dropout < 1:
            raise ConfigError(f"{name}.id_dropout: must be in [0, 1), got {self.id_dropout}")
        if not self.future_weight >= 0:
            raise ConfigError(f"{name}.future_weight: must be >= 0, got {self.future_weight}")
        if not self.distinct_weight >= 0:
            raise ConfigError(f"{name}.distinct_weight: must be >= 0, got {self.distinct_weight}")
        self._check_tuning()

    def _check_tuning(self) -> None:
        name = type(self).__name__
        if self.text_tuning not in TUNINGS:
            raise ConfigError(f"{name}.text_tuning: must be one of {TUNINGS}, got {self.text_tuning!r}")
        for field in ("text_rank", "text_items"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}.{field}: must be an integer >= 1, got {value!r}")
        if not self.text_alpha > 0:
            raise ConfigError(f"{name}.text_alpha: must be > 0, got {self.text_alpha}")
        if not 0 <= self.text_dropout < 1:
            raise ConfigError(f"{name}.text_dropout: must be in [0, 1), got {self.text_dropout}")
        if self.text_pooling not in ("auto", *POOLINGS_TEXT):
            raise ConfigError(
                f"{name}.text_pooling: must be 'auto' or one of {POOLINGS_TEXT}, got {self.text_pooling!r}"
            )
        if self.text_tuning != "frozen" and self.encoder in ("none", "lexical", "minilm-onnx-int8"):
            raise ConfigError(
                f"{name}.text_tuning: {self.text_tuning!r} trains a language model on torch, which encoder "
                f"{self.encoder!r} is not; use encoder = 'minilm' or a model path or Hub name"
            )

    def fixed_weights(self) -> dict[str, float]:
        """``fusion_weights`` parsed: modality name -> weight (empty: learned weights)."""
        out: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in self.fusion_weights.split(","))):
            modality, _, value = part.partition("=")
            try:
                weight = float(value)
            except ValueError:
                weight = float("nan")
            if not modality.strip() or not weight >= 0:
                raise ConfigError(
                    f"{type(self).__name__}.fusion_weights: expected NAME=WEIGHT pairs with weights >= 0, got {part!r}"
                )
            out[modality.strip()] = weight
        if out and not sum(out.values()):
            raise ConfigError(f"{type(self).__name__}.fusion_weights: the weights must not all be 0")
        return out

    def net_config(self, modalities: list[str]) -> FacetNetConfig:
        """The settings the network reads, for an item tower over ``modalities`` (names in order)."""
        fixed = self.fixed_weights()
        unknown = sorted(set(fixed) - set(modalities))
        if unknown:
            raise ConfigError(f"{type(self).__name__}.fusion_weights: {unknown} not among the modalities {modalities}")
        weights = tuple(fixed.get(m, 1.0) for m in modalities) if fixed else None
        if weights is not None and len(modalities) > 1 and not sum(weights):
            raise ConfigError(f"{type(self).__name__}.fusion_weights: every present modality weighs 0")
        values = {f.name: getattr(self, f.name) for f in fields(FacetNetConfig) if f.name != "fusion_weights"}
        return FacetNetConfig(**values, fusion_weights=weights if len(modalities) > 1 else None)


@dataclass(frozen=True)
class SASRecTextConfig(FacetConfig):
    """SASRec+ over fused text + ID item vectors: the facet model with one last-state interest."""

    interests: int = 1
    pooling: str = "last"
    time_features: bool = False
    event_features: bool = False
    signal_features: bool = False


class FacetScorer(Scorer[FacetConfig]):
    """Scores an item by how well a user's K interests explain it (see the module docstring).

    A user without events gets training popularity. Fitted state: ``weights_`` (all network
    parameters as one float32 vector, in the order of a :class:`FacetNet` built from the
    config), ``content_`` and ``review_content_`` (the frozen item text and review vectors; shape
    [n_items, 0] when not used), ``vector_content_`` (the catalogue's vector sets side by side,
    named by ``vector_names_`` with widths ``vector_dims_``) and ``id_known_`` (1 for items with
    training events: only they have an ID vector). With ``text_tuning``, ``content_`` holds the
    tuned encoder's vectors and ``text_adapter_`` its adapter (one float32 vector), from which
    :meth:`export_text_encoder` and :meth:`tuned_item_encoder` rebuild the merged encoder.
    """

    config_class = FacetConfig
    capabilities = Capabilities(
        needs=frozenset({"ids", "text", "reviews", "image", "audio", "time", "events"}),
        can=frozenset({"known_users", "raw_history", "cold_items", "interest_vectors", "item_vectors", "explain"}),
    )

    weights_: np.ndarray
    content_: np.ndarray
    review_content_: np.ndarray
    vector_content_: np.ndarray
    vector_names_: str
    vector_dims_: np.ndarray
    id_known_: np.ndarray
    text_adapter_: np.ndarray
    popularity_: np.ndarray
    calibration_: np.ndarray
    losses_: np.ndarray
    valid_scores_: np.ndarray
    best_epoch_: int | None
    fit_seconds_: float

    def __init__(self, config: FacetConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self._net: tuple[np.ndarray, FacetNet] | None = None
        self._items: tuple[np.ndarray, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    # ------------------------------------------------------------------ fitting

    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, valid: EvalSet | None = None) -> Self:
        cfg = self.config
        if valid is not None and valid.history.n_items != train.n_items:
            raise DataError(
                f"{type(self).__name__}.fit: valid.history has {valid.history.n_items} items but train has "
                f"{train.n_items}; both must use the training item vocabulary"
            )
        self._net = self._items = None
        self._content(train, catalog)
        train = train.sorted()
        offsets = train.user_offsets()
        start, end = training_rows(offsets, cfg.max_len)
        if not len(start):
            raise DataError(f"{type(self).__name__}.fit: no user has 2 or more events; a next-item model needs pairs")
        features = EventFeatures.of(train)
        windows = features.windows(start, end, cfg.max_len)
        windows["target"] = features.windows(start + 1, end + 1, cfg.max_len)["items"]
        counts = np.bincount(train.item_idx, minlength=train.n_items).astype(np.float32)
        self.id_known_ = (counts > 0).astype(np.uint8)
        self.popularity_ = counts / max(1.0, float(counts.max()))
        self.n_items_ = train.n_items
        seed_everything(cfg.seed)
        tuner = None
        if cfg.text_tuning != "frozen":
            tuner = self._tuner(self._base_encoder().texts(catalog), steps_per_epoch=-(-len(start) // cfg.batch_size))
            self.content_ = tuner.table().numpy()  # the untrained adapter's: the frozen encoder's vectors
        net = self._build(counts, ipw_weights(counts, cfg.ipw_power) if cfg.ipw_power > 0 else None, tuner)
        validate = None
        if valid is not None:
            validation = NextItemValidation(valid)

            def validate() -> float:
                return validation(lambda history, users: self._scores(net, history, users))

        data = TrainingWindows(windows, shuffle=cfg.shuffle_order)
        history = fit_loop(net, cfg.train_config(), data=data, validate=validate, description=type(self).__name__)
        net.eval()
        self.losses_ = np.asarray(history.losses, dtype=np.float32)
        self.valid_scores_ = np.asarray(history.scores, dtype=np.float32)
        self.best_epoch_ = history.best_epoch
        self.fit_seconds_ = history.seconds
        if tuner is None:
            self.weights_ = nn.utils.parameters_to_vector(net.parameters()).detach().cpu().numpy()
            self._net, self._items = (self.weights_, net), None
        else:  # the served network is an ordinary one over the tuned encoder's vectors
            self.content_, self.text_mean_ = tuner.table().cpu().numpy(), tuner.mean.cpu().numpy()
            self.text_adapter_ = tuner.adapter_vector()
            own = {id(p) for p in tuner.parameters()}
            kept = [p for p in net.parameters() if id(p) not in own]
            self.weights_ = nn.utils.parameters_to_vector(kept).detach().cpu().numpy()
            self._net = self._items = None
        self.calibration_ = self._calibrate(valid) if valid is not None else np.full(2, np.nan, np.float32)
        return self

    def _calibrate(self, valid: EvalSet) -> np.ndarray:
        """Platt scaling (slope, intercept) of scores on validation pairs: each target against one
        random item the user has not seen, so a preference of p means "preferred to a random unseen
        item with probability p"."""
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(self.config.seed)
        targets = valid.targets
        users, rows = np.unique(targets.user_idx, return_inverse=True)
        scores = self._score(valid.history, users)
        seen = valid.history.matrix("ones")[users].tocsr()
        negatives = rng.integers(0, self.n_items_, len(targets))
        clash = (np.asarray(seen[rows, negatives]).ravel() > 0) | (negatives == targets.item_idx)
        keep = ~clash
        x = np.r_[scores[rows, targets.item_idx], scores[rows[keep], negatives[keep]]][:, None]
        y = np.r_[np.ones(len(targets)), np.zeros(int(keep.sum()))]
        model = LogisticRegression(C=1e4).fit(x, y)
        return np.array([model.coef_[0, 0], model.intercept_[0]], np.float32)

    def preference(self, history: Interactions, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Normalised preference in [0, 1] of user ``users[r]`` for item ``items[r]``: the calibrated
        probability that they prefer it to a random item they have not seen (see ``_calibrate``)."""
        self._require_fitted("preference")
        if np.isnan(self.calibration_).any():
            raise DataError(f"{type(self).__name__}.preference: fit with a validation set (valid=...) to calibrate")
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        if users.shape != items.shape or users.ndim != 1:
            raise DataError(f"preference: users and items must be 1-d of one length, got {users.shape}, {items.shape}")
        if items.size and (items.min() < 0 or items.max() >= self.n_items_):
            raise DataError(f"preference: item indices must be in 0..{self.n_items_ - 1}")
        unique, rows = np.unique(users, return_inverse=True)
        scores = self.score(history, unique)[rows, items].astype(np.float64)
        slope, intercept = self.calibration_
        return (1.0 / (1.0 + np.exp(-(slope * scores + intercept)))).astype(np.float32)

    def _content(self, train: Interactions, catalog: ItemCatalog | None) -> None:
        """Set the frozen, centred unit item vectors: ``content_`` (text) and ``review_content_``,
        each [n_items, d] or [n_items, 0] when unused, ``text_mean_`` (the mean the text was
        centred by, for items added later) and the catalogue's vector sets (``vector_content_``,
        side by side, with ``vector_names_`` and ``vector_dims_``). Review vectors come from the
        training events only, so no held-out review leaks."""
        cfg = self.config
        none = np.zeros((train.n_items, 0), np.float32)
        self.content_, self.review_content_, self.text_mean_ = none, none, np.zeros(0, np.float32)
        names = self._vector_sets(catalog)
        if (cfg.encoder != "none" or names) and catalog is None:
            raise DataError(
                f"{type(self).__name__} reads item content: call .fit(train, catalog), or set encoder = 'none'"
            )
        if catalog is not None and len(catalog) != train.n_items:
            raise DataError(f"catalog has {len(catalog)} items but train has {train.n_items}; they must align")
        sets = [centre(l2_normalize(catalog.vectors[n]))[0] for n in names] if catalog is not None else []
        self.vector_content_ = np.hstack(sets) if sets else none
        self.vector_names_ = ",".join(names)
        self.vector_dims_ = np.array([m.shape[1] for m in sets], np.int64)
        if cfg.encoder == "none":
            if not names and not cfg.use_id:
                raise DataError(
                    f"{type(self).__name__}: nothing to read items by (encoder 'none', no vector sets, use_id false)"
                )
            return
        from facetrec.scoring.content_knn import ContentKNNConfig, encode_items

        settings = ContentKNNConfig(encoder=cfg.encoder, max_tokens=cfg.max_tokens, store_dir=cfg.store_dir)
        with_reviews = cfg.reviews and train.review is not None
        if cfg.text_tuning != "frozen":  # the text comes from the tuned encoder (fit); reviews stay frozen
            reviews = TextItemEncoder.from_settings(settings).encode_reviews(catalog, train) if with_reviews else None
        else:
            text, reviews = encode_items(catalog, settings, train if with_reviews else None)
            self.content_, self.text_mean_ = centre(text.normalize().vectors)
        if reviews is not None:
            self.review_content_ = centre(reviews.vectors)[0]

    def _base_encoder(self) -> TextItemEncoder:
        """The configured (frozen) text encoder: the base model, and how item texts are built."""
        from facetrec.scoring.content_knn import ContentKNNConfig

        cfg = self.config
        return TextItemEncoder.from_settings(ContentKNNConfig(encoder=cfg.encoder, max_tokens=cfg.max_tokens,
                                                              store_dir=cfg.store_dir))  # fmt: skip

    def _tuner(self, texts: list[str], steps_per_epoch: int = 1) -> TextTuner:
        """The base encoder with an untrained adapter (seeded by the caller) over ``texts``; an
        AdaLoRA schedule spans every epoch's ``steps_per_epoch`` steps."""
        cfg = self.config
        return TextTuner(
            self._base_encoder().language_model().model_path, texts, cfg.text_tuning, rank=cfg.text_rank,
            alpha=cfg.text_alpha, dropout=cfg.text_dropout, targets=cfg.text_targets, pooling=cfg.text_pooling,
            max_tokens=cfg.max_tokens, checkpointing=cfg.text_checkpointing,
            total_steps=cfg.epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch,
        )  # fmt: skip

    def export_text_encoder(self, directory: str | Path) -> Path:
        """Write the tuned encoder, its adapter merged into the weights, as a sentence-transformers
        directory (safetensors): ``SentenceTransformerEncoder(directory)``, its ONNX backend included,
        gives the vectors this model was trained with (before centring)."""
        self._require_fitted("export_text_encoder")
        if "text_adapter_" not in vars(self):
            raise ConfigError(
                f"{type(self).__name__} was trained with text_tuning 'frozen'; its encoder is the base model"
            )
        tuner = self._tuner([""])  # the adapter's shape does not depend on the texts
        tuner.load_adapter_vector(self.text_adapter_, f"{type(self).__name__}.text_adapter_")
        return export_merged(tuner, directory, self.config.max_tokens)

    def tuned_item_encoder(self) -> TextItemEncoder | None:
        """The merged tuned encoder as an item encoder (written once per machine to a cache
        directory), so that items added while serving and free-text queries land in the tuned
        space; None when the text encoder was not tuned."""
        cfg = self.config
        if "text_adapter_" not in vars(self):
            return None
        settings = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name.startswith("text_")}
        base = self._base_encoder().language_model().model_path
        path = merged_directory(base, self.text_adapter_, {**settings, "max_tokens": cfg.max_tokens},
                                self.export_text_encoder)  # fmt: skip
        return TextItemEncoder(encoder=str(path), max_tokens=cfg.max_tokens, store_dir=cfg.store_dir)

    def _vector_sets(self, catalog: ItemCatalog | None) -> list[str]:
        """The names of the catalogue vector sets this model reads (``item_vectors``)."""
        choice = self.config.item_vectors.strip()
        available = sorted(catalog.vectors) if catalog is not None else []
        if choice == "all":
            return available
        if choice == "none":
            return []
        wanted = [n.strip() for n in choice.split(",") if n.strip()]
        missing = [n for n in wanted if n not in available]
        if missing:
            raise DataError(
                f"{type(self).__name__}.item_vectors: the catalogue has no vector set {missing} "
                f"(it has {available or 'none'}; import them with --item-vectors NAME=FILE)"
            )
        return wanted

    def _matrices(self) -> list[np.ndarray]:
        """The frozen content modalities in the item tower's order: text, reviews, each vector set."""
        cuts = np.cumsum(self.vector_dims_)[:-1]
        sets = np.split(self.vector_content_, cuts, axis=1) if len(self.vector_dims_) else []
        return [self.content_, self.review_content_, *sets]

    @property
    def modalities(self) -> list[str]:
        """The item tower's modalities in order (the present content ones, then "id")."""
        self._require_fitted("modalities")
        names = ["text", "reviews", *filter(None, self.vector_names_.split(","))]
        present = [name for name, m in zip(names, self._matrices(), strict=True) if m.shape[1]]
        return present + (["id"] if self.config.use_id else [])

    def _build(
        self, counts: np.ndarray | None = None, target_weights: np.ndarray | None = None, text: TextTuner | None = None
    ) -> FacetNet:
        """A network for the fitted content (``counts`` and the inverse-propensity
        ``target_weights``: the training counts and weights, and ``text``, the encoder tuned with
        it, when training)."""
        config = self.config.net_config(self.modalities)
        return FacetNet(self._matrices(), self.id_known_, config, counts, target_weights, text, self.config.text_items)

    @property
    def interest_merge(self) -> str:
        """How a Recommender merges this model's per-interest terms (``RankConfig.interest_merge``
        "auto"): the mixture's log-sum-exp for soft routing (chosen on validation, docs/facet.md),
        the best single interest for hard routing, which scores by it."""
        return "max" if self.config.routing == "hard" else "logsumexp"

    @property
    def state_events(self) -> int:
        """The encoder reads the newest ``max_len`` events, and the oldest of them its time gap to
        the event before: a state is exactly a function of the newest ``max_len + 1`` events."""
        return self.config.max_len + 1

    def add_items(self, text_vectors: np.ndarray) -> None:
        """Append items described by their raw text embeddings: centred as the training items were,
        without an ID vector and without reviews (they are cold), so they are scored through
        their text at once. The ID table grows by unused rows so the weights keep their layout."""
        self._require_fitted("add_items")
        vectors = np.asarray(text_vectors, np.float32)
        if self.content_.shape[1] == 0:
            raise ConfigError(
                f"{type(self).__name__} was trained without item text (encoder 'none'); retrain to add items"
            )
        if vectors.ndim != 2 or vectors.shape[1] != self.content_.shape[1]:
            raise DataError(f"add_items: expected [m, {self.content_.shape[1]}] text vectors, got {vectors.shape}")
        m = len(vectors)
        new, _ = centre(l2_normalize(vectors), self.text_mean_)  # as the training items were
        old = self._model().state_dict()
        self.content_ = np.vstack([self.content_, new])
        for name in ("review_content_", "vector_content_"):  # new items have no reviews; their vectors are missing
            matrix = getattr(self, name)
            setattr(self, name, np.vstack([matrix, np.zeros((m, matrix.shape[1]), np.float32)]))
        self.id_known_ = np.r_[self.id_known_, np.zeros(m, np.uint8)]
        self.popularity_ = np.r_[self.popularity_, np.zeros(m, self.popularity_.dtype)]
        self.n_items_ += m
        grown = self._build()
        state = grown.state_dict()
        for name, value in old.items():
            state[name] = (
                value if state[name].shape == value.shape else torch.cat([value, state[name][len(value) :] * 0])
            )
        grown.load_state_dict(state)
        self.weights_ = nn.utils.parameters_to_vector(grown.parameters()).detach().cpu().numpy()
        self._net = self._items = None

    # ------------------------------------------------------------------ inference

    def _model(self) -> FacetNet:
        """The network for ``weights_``, rebuilt once after load (or a change of weights)."""
        if self._net is not None and self._net[0] is self.weights_:
            return self._net[1]
        net = load_flat_weights(self._build(), self.weights_, type(self).__name__, self.config.device)
        self._net, self._items = (self.weights_, net), None
        return net

    @torch.no_grad()
    def _item_tables(self, net: FacetNet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs, outputs, parts) item tables (:meth:`FacetNet.item_tables`) in eval mode; cached for the
        fitted network (they do not depend on the user), recomputed for a network still in
        training (validation)."""
        fitted = self._net is not None and net is self._net[1]
        if fitted and self._items is not None and self._items[0] is self.weights_:
            return self._items[1]
        tables = net.item_tables()
        if fitted:
            self._items = (self.weights_, tables)
        return tables

    @torch.no_grad()
    def _interests(self, net: FacetNet, history: Interactions, users: np.ndarray):
        """Per batch of users: (interests [b, K, D], log gate weights [b, K], attention
        [b, K, width], windows [b, width], output item vectors [n_items, D])."""
        was_training = net.training
        if was_training:
            net.eval()
        history = history.sorted()
        offsets = history.user_offsets()
        features = EventFeatures.of(history)
        device = next(net.parameters()).device
        inputs, items, _ = self._item_tables(net)
        for start in range(0, len(users), EVAL_BATCH):
            chunk = users[start : start + EVAL_BATCH]
            windows = features.windows(offsets[chunk], offsets[chunk + 1], self.config.max_len)
            batch = {k: v.to(device) for k, v in trimmed(windows, slice(None)).items()}
            interests, log_weights, attention = net(batch, inputs, last_only=True)
            yield interests, log_weights, attention, batch["items"], items
        if was_training:  # (train() walks every module: a measurable share of one user's encoding)
            net.train()

    def _scores(self, net: FacetNet, history: Interactions, users: np.ndarray) -> torch.Tensor:
        out = []
        fallback = torch.from_numpy(self.popularity_)
        for interests, log_weights, _, windows, items in self._interests(net, history, users):
            terms = self._terms(interests, log_weights, items)
            best = terms.amax(1) if self.config.routing == "hard" else terms.logsumexp(1)
            empty = (windows[:, -1] == 0)[:, None]
            out.append(torch.where(empty, fallback.to(best.device), best))
        return torch.cat(out) if out else torch.zeros(0, self.n_items_)

    def _terms(self, interests: torch.Tensor, log_weights: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """[b, K, n_items]: each interest's term for each item (reduced over K to a score)."""
        logits = torch.einsum("...kh,nh->...kn", interests, items)
        return interest_log_probs(logits, log_weights, self.config.routing)

    def _score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        return self._scores(self._model(), history, users).cpu().numpy()

    def item_vectors(self) -> np.ndarray:
        """[n_items, D] item vectors (D = hidden, or modalities x hidden with ``interest_fusion``):
        an item's score under an interest is their dot product."""
        self._require_fitted("item_vectors")
        net = self._model()
        return self._item_tables(net)[1].cpu().numpy()

    @torch.no_grad()
    def modality_contributions(self, vectors: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """[m, M]: how much each modality (:attr:`modalities`) adds to the dot product of
        ``vectors[r]`` (an interest, [m, hidden]) with item ``idx[r]``; a row sums to that dot
        product, so its largest entry names the modality that made the item match."""
        self._require_fitted("modality_contributions")
        parts = self._item_tables(self._model())[2][torch.from_numpy(np.asarray(idx, np.int64))].cpu().numpy()
        vectors = np.asarray(vectors, np.float32)
        if vectors.shape[1] != parts.shape[2]:  # interest_fusion: the interest once per modality, each weighed
            return np.einsum("mkh,mkh->mk", parts, vectors.reshape(parts.shape))
        return np.einsum("mkh,mh->mk", parts, vectors)

    def encode_users(self, history: Interactions, users: np.ndarray) -> list[UserState]:
        """One :class:`UserState` per user: interests, weights and the attention on each history item.

        A weight is the share of the user's recent items whose best-matching interest it is;
        with ``adaptive`` an interest no item prefers is dropped. A user without events raises
        :class:`DataError`: there is nothing to form interests from (use popularity instead).
        """
        self._require_fitted("encode_users")
        users = np.asarray(users, dtype=np.int64)
        states: list[UserState] = []
        for interests, log_weights, attention, windows, items in self._interests(self._model(), history, users):
            for row in range(len(interests)):
                real = windows[row] > 0
                if not bool(real.any()):
                    raise DataError(f"user {history.users.id_of(int(users[len(states)]))!r} has no events to encode")
                idx = windows[row][real] - 1
                dots = interests[row] @ items.T
                offsets = interest_offsets(dots, log_weights[row], self.config.routing)
                # Which interest explains each history item best, without the gate's prior (which
                # favours the most recent intent and would hide the others from the state).
                prior = log_weights[row] if self.config.routing == "soft" else 0.0
                best = (dots[:, idx] + (offsets - prior)[:, None]).argmax(0)
                states.append(self._state(interests[row], attention[row][:, real], idx, best, offsets))
        return states

    def _state(
        self,
        interests: torch.Tensor,
        attention: torch.Tensor,
        idx: torch.Tensor,
        best: torch.Tensor,
        offsets: torch.Tensor,
    ) -> UserState:
        """``best``: for each history item, the interest that explains it best; ``offsets``: what
        each interest adds to its dot products (see ``interest_offsets``), so that retrieval can
        rank by the model's own per-interest terms."""
        counts = torch.bincount(best, minlength=len(interests)).float()
        keep = counts > 0 if self.config.adaptive else torch.ones_like(counts, dtype=torch.bool)
        weights = counts[keep] / counts[keep].sum()
        attention = attention[keep]
        attention = attention / attention.sum(1, keepdim=True).clamp_min(1e-12)
        return UserState(
            interests[keep].cpu().numpy(),
            weights.cpu().numpy(),
            idx.cpu().numpy().astype(np.int32),
            attention.cpu().numpy(),
            offsets[keep].cpu().numpy(),
        )


class SASRecTextScorer(FacetScorer):
    """SASRec+ whose item vectors fuse frozen text embeddings with ID embeddings (K = 1)."""

    config_class = SASRecTextConfig
