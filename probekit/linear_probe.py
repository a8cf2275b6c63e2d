"""Stored vs recalled: can a fact's gold answer still be read linearly from its entity state?

``fit_answer_probe(states, labels)`` fits a multinomial logistic regression (scikit-learn; features standardised;
the inverse regularisation strength C chosen by stratified cross-validation unless given) that maps layer-l entity
states [N, d] to gold answers (one label per fact, e.g. the P17 country). Answers with fewer than ``min_count``
training examples are left out: a probe cannot learn a class from one example, and a fact whose answer is not a
probe class cannot be read by it (``AnswerProbe.knows`` says which facts can).

``recall_shares(probe_correct, model_correct)`` splits facts into the four cells of stored (probe right) ×
recalled (the model's greedy answer right); *stored but not recalled* is knowledge still present in the
representation that the model no longer produces.
"""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .answers import answer_key
from .errors import ProbekitError

DEFAULT_CS = (0.001, 0.01, 0.1, 1.0)


@dataclass
class AnswerProbe:
    """A fitted answer probe. ``classes``: the answers it can output; ``C``: the regularisation used;
    ``cv_accuracy``: mean held-out-fold accuracy at that C (nan when C was given)."""

    pipeline: Pipeline
    classes: tuple[str, ...]
    C: float
    cv_accuracy: float

    def predict(self, states: torch.Tensor | np.ndarray) -> np.ndarray:
        """[N, d] → [N] predicted answers."""
        return self.pipeline.predict(_numpy(states))

    def knows(self, answers: Sequence[Sequence[str]]) -> np.ndarray:
        """[N] bool: whether any of a fact's gold answers is one of the probe's classes."""
        classes = {answer_key(c) for c in self.classes}
        return np.array([any(answer_key(a) in classes for a in aliases) for aliases in answers])

    def correct(self, states: torch.Tensor | np.ndarray, answers: Sequence[Sequence[str]]) -> np.ndarray:
        """[N] bool: the prediction matches one of the fact's gold answers (case and spacing ignored)."""
        predicted = self.predict(states)
        return np.array([answer_key(p) in {answer_key(a) for a in aliases}
                         for p, aliases in zip(predicted, answers)])


def fit_answer_probe(states: torch.Tensor | np.ndarray, labels: Sequence[str], *, C: float | None = None,
                     Cs: Sequence[float] = DEFAULT_CS, folds: int = 3, min_count: int = 2, max_iter: int = 500,
                     seed: int = 0) -> AnswerProbe:
    """Fit a probe on `states` [N, d] with gold `labels` [N]; C by `folds`-fold stratified CV over `Cs` unless given."""
    x, y = _numpy(states), np.asarray(labels, dtype=object)
    if len(x) != len(y):
        raise ProbekitError(f"{len(x)} states but {len(y)} labels")
    counts = Counter(y.tolist())
    keep = np.array([counts[label] >= min_count for label in y.tolist()])
    x, y = x[keep], y[keep]
    classes = tuple(sorted(set(y.tolist())))
    if len(classes) < 2:
        raise ProbekitError(f"an answer probe needs at least two answers with {min_count}+ examples each; "
                            f"got {len(classes)} from {len(keep)} facts")
    cv_accuracy = float("nan")
    if C is None:
        n_splits = max(2, min(folds, min(counts[c] for c in classes)))
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        scores = {c: _cv_score(x, y, c, splitter, max_iter) for c in Cs}
        C = max(scores, key=scores.get)
        cv_accuracy = scores[C]
    pipeline = _pipeline(C, max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(x, y)
    return AnswerProbe(pipeline, classes, float(C), cv_accuracy)


def recall_shares(probe_correct: np.ndarray, model_correct: np.ndarray) -> dict[str, float]:
    """Shares of facts in each cell: stored_not_recalled (probe ✓, model ✗), recalled_not_stored (✗, ✓),
    both and neither; plus probe and model accuracy. Inputs: [N] bool."""
    p, m = np.asarray(probe_correct, bool), np.asarray(model_correct, bool)
    if p.shape != m.shape or p.size == 0:
        raise ProbekitError(f"recall shares need two equal, non-empty masks; got {p.shape} and {m.shape}")
    return {"stored_not_recalled": float(np.mean(p & ~m)), "recalled_not_stored": float(np.mean(~p & m)),
            "both": float(np.mean(p & m)), "neither": float(np.mean(~p & ~m)),
            "probe_accuracy": float(p.mean()), "model_accuracy": float(m.mean())}


def _pipeline(C: float, max_iter: int) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


def _cv_score(x: np.ndarray, y: np.ndarray, C: float, splitter, max_iter: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # folds where a rare class is absent
        return float(cross_val_score(_pipeline(C, max_iter), x, y, cv=splitter).mean())


def _numpy(states: torch.Tensor | np.ndarray) -> np.ndarray:
    return states.detach().float().cpu().numpy() if isinstance(states, torch.Tensor) else np.asarray(states, np.float32)
