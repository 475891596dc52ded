"""Train/validation/test splits that never show a model the future.

Every split returns the same shape: ``train`` events to fit on, and for validation and test an
:class:`EvalSet` of ``targets`` to predict plus the ``history`` a model may read when
predicting them. Within a user, events are ordered by time with ties kept in file order, so
"the last event" is the last one written among those sharing the latest timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facetrec.errors import DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.types import Interactions

PROTOCOLS = ("loo", "temporal", "ratio", "multi-target")


@dataclass(frozen=True, eq=False)
class Split:
    """The output of every split function; ``notes`` says which users were left out and why."""

    protocol: str
    train: Interactions
    valid: EvalSet
    test: EvalSet
    notes: tuple[str, ...] = ()

    def sizes(self) -> dict[str, int]:
        """Event and user counts of each part, for reports."""
        return {
            "train_events": len(self.train),
            "train_users": len(np.unique(self.train.user_idx)),
            "valid_targets": len(self.valid.targets),
            "valid_users": self.valid.n_users,
            "test_targets": len(self.test.targets),
            "test_users": self.test.n_users,
        }


def _positions(data: Interactions) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """Sorted data, each event's position within its user's sequence, and that sequence's length."""
    data = data.sorted()
    offsets = data.user_offsets()
    counts = np.diff(offsets)
    position = np.arange(len(data)) - offsets[data.user_idx]
    return data, position, counts[data.user_idx]


def leave_one_out(data: Interactions) -> Split:
    """Per user: the last event is the test target, the one before it the validation target.

    Users with fewer than 3 events stay entirely in training (they could not be both trained
    on and evaluated); the notes count them.
    """
    data, position, length = _positions(data)
    eligible = length >= 3
    test = eligible & (position == length - 1)
    valid = eligible & (position == length - 2)
    train = ~(test | valid)
    notes = _short_users_note(data, eligible, 3)
    return Split(
        "loo",
        data.take(train),
        EvalSet(data.take(train), data.take(valid)),
        EvalSet(data.take(~test), data.take(test)),
        notes,
    )


def user_ratio(data: Interactions, train: float = 0.8, valid: float = 0.1) -> Split:
    """Per user, by time: the first ``train`` share trains, the next ``valid`` share validates,
    the rest tests. Each part of an eligible user (3+ events) gets at least one event."""
    if not (0 < train < 1 and 0 <= valid < 1 and train + valid < 1):
        raise DataError(f"user_ratio: need 0 < train < 1, 0 <= valid and train + valid < 1; got {train}, {valid}")
    data, position, length = _positions(data)
    eligible = length >= 3
    n_train = np.clip(np.floor(length * train), 1, length - 2)
    n_valid = np.clip(np.floor(length * (train + valid)) - n_train, 1 if valid > 0 else 0, length - n_train - 1)
    in_train = ~eligible | (position < n_train)
    in_valid = eligible & ~in_train & (position < n_train + n_valid)
    in_test = eligible & ~in_train & ~in_valid
    return Split(
        "ratio",
        data.take(in_train),
        EvalSet(data.take(in_train), data.take(in_valid)),
        EvalSet(data.take(~in_test), data.take(in_test)),
        _short_users_note(data, eligible, 3),
    )


def temporal(
    data: Interactions,
    test_start: int | None = None,
    valid_start: int | None = None,
    test_share: float = 0.1,
    valid_share: float = 0.1,
) -> Split:
    """A global cut in time: events at or after ``test_start`` test, those from ``valid_start``
    up to it validate, earlier ones train. Cut times default to the quantiles of event time
    that leave ``test_share`` and ``valid_share`` of events after them.

    Targets of users with no earlier event (new users) are kept: their history is empty, and
    the notes count them so that evaluation can report them separately.
    """
    data = data.sorted()
    times = data.timestamp
    if test_start is None:
        test_start = int(np.quantile(times, 1 - test_share, method="higher"))
    if valid_start is None:
        valid_start = int(np.quantile(times, 1 - test_share - valid_share, method="higher"))
    if valid_start > test_start:
        raise DataError(f"temporal split: valid_start {valid_start} is after test_start {test_start}")
    in_train = times < valid_start
    in_valid = (times >= valid_start) & (times < test_start)
    in_test = times >= test_start
    if not in_train.any() or not in_test.any():
        raise DataError(
            f"temporal split: the cut times leave {int(in_train.sum())} training and {int(in_test.sum())} test "
            "events; choose cut times inside the data's time range"
        )
    seen = np.zeros(data.n_users, dtype=bool)
    seen[data.user_idx[~in_test]] = True
    new_users = len(np.unique(data.user_idx[in_test & ~seen[data.user_idx]]))
    notes = (
        f"temporal split at valid_start={valid_start}, test_start={test_start} (epoch seconds); "
        f"{new_users} test users have no earlier events",
    )
    return Split(
        "temporal",
        data.take(in_train),
        EvalSet(data.take(in_train), data.take(in_valid)),
        EvalSet(data.take(~in_test), data.take(in_test)),
        notes,
    )


def multi_target(
    data: Interactions, *, test_users: float = 0.1, valid_users: float = 0.1, history_share: float = 0.8, seed: int = 0
) -> Split:
    """Hold out whole users (chosen with ``seed``): the first ``history_share`` of a held-out
    user's sequence is the history, the rest are the targets. Training sees only the other
    users. This is the protocol multi-interest papers (ComiRec, KDD 2020) use.
    """
    if not (0 < test_users < 1 and 0 <= valid_users < 1 and test_users + valid_users < 1 and 0 < history_share < 1):
        raise DataError(
            "multi_target: need shares in (0, 1) with test_users + valid_users < 1 and 0 < history_share < 1"
        )
    data, position, length = _positions(data)
    counts = np.bincount(data.user_idx, minlength=data.n_users)
    candidates = np.flatnonzero(counts >= 2)
    order = np.random.default_rng(seed).permutation(candidates)
    n_test = round(len(candidates) * test_users)
    n_valid = round(len(candidates) * valid_users)
    role = np.zeros(data.n_users, dtype=np.int8)  # 0 train, 1 valid, 2 test
    role[order[:n_test]] = 2
    role[order[n_test : n_test + n_valid]] = 1
    n_history = np.clip(np.floor(length * history_share), 1, length - 1)
    is_history = position < n_history
    user_role = role[data.user_idx]

    def held_out(r: int) -> EvalSet:
        return EvalSet(data.take((user_role == r) & is_history), data.take((user_role == r) & ~is_history))

    notes = (
        f"multi-target split (seed {seed}): {n_test} test users, {n_valid} validation users, "
        f"{len(candidates) - n_test - n_valid} training users; {data.n_users - len(candidates)} users with "
        "a single event always train",
    )
    return Split("multi-target", data.take(user_role == 0), held_out(1), held_out(2), notes)


def make_split(data: Interactions, protocol: str, seed: int = 0) -> Split:
    """Dispatch by protocol name with default parameters (CLI and demo use this)."""
    if protocol == "loo":
        return leave_one_out(data)
    if protocol == "ratio":
        return user_ratio(data)
    if protocol == "temporal":
        return temporal(data)
    if protocol == "multi-target":
        return multi_target(data, seed=seed)
    raise DataError(f"unknown split protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def _short_users_note(data: Interactions, eligible: np.ndarray, minimum: int) -> tuple[str, ...]:
    short = len(np.unique(data.user_idx[~eligible]))
    return (f"{short} users with fewer than {minimum} events are used for training only",) if short else ()
