"""Drift of models in memory against θ0: the captures and the six metrics of a series probe, without disk.

``DriftProbe(tokenizer, model_config, held, unknown, new, config)`` fixes the probe layer, the fact sets, the
answer pairs P and the NS subsample S (and refuses a k beyond the vocabulary); ``capture(prober, base)`` reads one
model's tensors (θ0's own capture takes ``base=None``: its top-k ids I decide which answer logits of the unknown
facts are gathered for every later model); ``metrics(base, s)`` compares a model's tensors with θ0's exactly as
``probekit probe`` does. ``drift(base_model, model, tokenizer, held, ...)`` does all three for one model and
returns the rows ``probes.csv`` would hold.

A PEFT model is probed through its base model with the adapters active (the merged view); when the θ0 given is
that same base model, θ0 is captured with the adapters disabled.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
from dataclasses import dataclass

import pandas as pd
import torch

from . import metrics
from .capture import Prober
from .config import option
from .entities import DEFAULT_PROMPT_FORMAT, Fact, locate_entities, read_facts
from .errors import ProbekitError
from .families import probe_layers
from .outcomes import OUTCOME_KEYS, correct


COLUMNS = ["run", "checkpoint", "name", "kind", "index", "layer", "metric", "value"]
STATE_KEYS = ("held_states", "unk_states", "new_states")  # the layer-dependent tensors of a capture


def at_layer(states: dict[str, torch.Tensor], layer: int) -> dict[str, torch.Tensor]:
    """One layer's view of a several-layer capture (state tensors [L, N, d] → [N, d], ``layers`` [L] dropped);
    a one-layer capture is returned as it is."""
    if "layers" not in states:
        return states
    where = (states["layers"] == layer).nonzero()
    if len(where) != 1:
        raise ProbekitError(f"layer {layer} was not captured (layers: {states['layers'].tolist()})")
    i = int(where[0, 0])
    return {k: v[i] if k in STATE_KEYS else v for k, v in states.items() if k != "layers"}


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of a series probe (defaults are the study's, see probekit.metrics)."""

    layer: int | None = option(None, "1-based probe layer l (Hugging Face hidden_states[l]); default: the middle "
                                     "layer, num_hidden_layers // 2")
    layers: list[str] | None = option(None, "several layers read in one pass, e.g. 4 8 14, or all (instead of "
                                            "--layer): one row per checkpoint × layer × metric")
    k: int = option(metrics.DEFAULT_K, "top-k size for Rank-rho, NTR and JSD (1 to the vocabulary size)")
    ns_sample: int | None = option(metrics.DEFAULT_NS_SAMPLE, "NS subsample size |S| (0 = all held-out facts)")
    max_pairs: int | None = option(metrics.DEFAULT_MAX_PAIRS, "cap on the (unknown, held) answer pairs (0 = all)")
    seed: int = option(0, "seed of the NS subsample and of the pair cap")
    jsd_log_base: float = option(math.e, "log base of JSD (e: nats; 2: bits)")
    prompt_format: str = option(DEFAULT_PROMPT_FORMAT, "prompt with {question}; \\n in a flag is a newline")
    batch_size: int = option(32, "facts per forward pass (unless --batch-tokens)", runtime=True)
    batch_tokens: int | None = option(None, "tokens per forward pass, prompts × padded length (unset: --batch-size "
                                      "facts on CPU, 16384 tokens on a GPU)", runtime=True)
    device: str | None = option(None, "cpu, cuda, cuda:1, ... (unset: cuda if available, else cpu)", runtime=True)
    dtype: str | None = option(None, "model dtype (default float32 on CPU, bfloat16 on GPU)",
                               choices=["float32", "bfloat16", "float16", "float64"])
    allow_pickle: bool = option(False, "allow pickle (.bin, .pt) weights: only if you trust them", runtime=True)
    accuracy: bool = option(True, "greedy exact match of every fact set per checkpoint (accuracy_held, "
                                  "accuracy_unknown, accuracy_new rows; per-fact outcomes.parquet, ΔD_Held, lost.csv); "
                                  "--no-accuracy skips the decoding")
    overlap_loads: bool = option(True, "read the next checkpoint's weights while the current one is probed (CPU, "
                                       "CUDA; one model in flight); --no-overlap-loads loads each in its turn",
                                 runtime=True)
    skip_broken: bool = option(False, "skip a checkpoint whose weights are missing, truncated or unreadable (with "
                                      "a warning) instead of stopping", runtime=True)

    def __post_init__(self):
        if self.layers is not None:  # "all", 14 or [4, 8, 14] from Python; a list of strings from the command line
            object.__setattr__(self, "layers", [self.layers] if isinstance(self.layers, (str, int)) else
                               list(self.layers))
        for name in ("ns_sample", "max_pairs"):  # 0 = all
            if getattr(self, name) == 0:
                object.__setattr__(self, name, None)
        least = {"k": 1, "batch_size": 1, "batch_tokens": 1, "layer": 1, "ns_sample": 0, "max_pairs": 0}
        for name, minimum in least.items():
            if (value := getattr(self, name)) is not None and value < minimum:
                raise ProbekitError(f"--{name.replace('_', '-')} must be at least {minimum} (got {value})")
        if not self.jsd_log_base > 0 or self.jsd_log_base == 1:
            raise ProbekitError(f"--jsd-log-base must be positive and not 1 (got {self.jsd_log_base})")


def _check_k(model_or_config, k: int) -> None:
    config = getattr(model_or_config, "config", model_or_config)
    vocab = getattr(config.get_text_config(), "vocab_size", None)
    if vocab is not None and k > vocab:
        name = getattr(config, "name_or_path", None) or "the model"
        raise ProbekitError(f"--k {k} is larger than the vocabulary of {name} ({vocab} tokens); give 1 <= k <= {vocab}")


def as_facts(facts) -> list[Fact] | None:
    """A list of Facts as given, or the facts of a file / ``datasets.Dataset`` (see ``read_facts``); None stays."""
    if facts is None or (isinstance(facts, (list, tuple)) and all(isinstance(f, Fact) for f in facts)):
        return None if facts is None else list(facts)
    return read_facts(facts)


def probed_module(model):
    """The transformers model whose decoder layers are probed: a PEFT model's base (adapters stay active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class DriftProbe:
    """The fact sets and settings of a drift measurement, ready to capture any model of one tokenizer."""

    def __init__(self, tokenizer, model_config, held: list[Fact], unknown: list[Fact] | None = None,
                 new: list[Fact] | None = None, config: ProbeConfig = ProbeConfig(), require_pairs: bool = True):
        """`model_config`: the config (or a model) of the models to be probed: it sets the layers (``config.layers``
        or ``config.layer``, default the middle one) and bounds ``config.k`` by the vocabulary."""
        if not held:
            raise ProbekitError("the held-out set is empty; give at least one fact")
        self.layers = probe_layers(model_config, config.layer, config.layers)
        self.layer = self.layers[0] if len(self.layers) == 1 else None  # None: several layers, states [L, N, d]
        _check_k(model_config, config.k)
        # a copy: nnsight sets padding_side (and a missing pad token) on the tokenizer it is given, and the caller's
        # may be a Trainer's, whose collator pads by it
        self.tokenizer, self.config = copy.deepcopy(tokenizer), config
        self.held, self.unknown, self.new = held, unknown, new
        self.pairs = None
        if unknown is not None:
            self.pairs = metrics.answer_pairs([f.answer for f in unknown], [f.answer for f in held],
                                        config.max_pairs, config.seed)
            if len(self.pairs) == 0 and not require_pairs:
                self.pairs = None  # no shared answers: Rank-ρ, NTR and JSD are left out
            elif len(self.pairs) == 0:
                raise ProbekitError(
                    "no unknown fact shares a gold answer with a held-out fact, so Rank-ρ, NTR and JSD have no "
                    "pairs; use larger or matching sets, or leave out --unknown"
                )
        for facts in (held, unknown, new):  # fail on an unlocatable entity before any model runs
            locate_entities(tokenizer, facts or [], config.prompt_format)
        self.ns_rows = metrics.ns_subsample(len(held), config.ns_sample, config.seed)

    def prober(self, model) -> Prober:
        c = self.config
        return Prober(probed_module(model), self.tokenizer, self.layers[-1], prompt_format=c.prompt_format,
                      batch_size=c.batch_size, batch_tokens=c.batch_tokens)

    def capture(self, prober: Prober, base: dict[str, torch.Tensor] | None = None, desc: str | None = None
                ) -> dict[str, torch.Tensor]:
        """One model's tensors: held_states [N, d], held_topk / held_topk_values [N, k]; with unknown facts
        unk_states [U, d] and, where there are pairs, unk_topk [U, k], unk_at_base_topk [P, k]; new_states [M, d].
        With several layers every ``*_states`` is [L, N, d] and ``layers`` [L] names them (see ``at_layer``).
        With ``accuracy``: held_correct [N], unk_correct [U], new_correct [M] (uint8 greedy exact match).
        `base`: θ0's tensors (None when `prober` reads θ0 itself)."""
        c = self.config
        layers = None if self.layer else self.layers
        out = {} if self.layer else {"layers": torch.tensor(self.layers)}
        capture = functools.partial(prober.capture, layers=layers)
        held = capture(self.held, topk=c.k, progress=desc and f"{desc} held")
        out.update(held_states=held.states, held_topk=held.topk_ids, held_topk_values=held.topk_values)
        if self.unknown is not None and self.pairs is not None:
            base_topk = held.topk_ids if base is None else base["held_topk"]
            gather = (self.pairs[:, 0], base_topk[self.pairs[:, 1]])
            unk = capture(self.unknown, topk=c.k, gather=gather, progress=desc and f"{desc} unknown")
            out.update(unk_states=unk.states, unk_topk=unk.topk_ids, unk_at_base_topk=unk.gathered)
        elif self.unknown is not None:  # no pairs: the states still serve MTD
            out["unk_states"] = capture(self.unknown, progress=desc and f"{desc} unknown").states
        if self.new is not None:
            out["new_states"] = capture(self.new, progress=desc and f"{desc} new").states
        if c.accuracy:
            for which, key in OUTCOME_KEYS.items():
                if (facts := getattr(self, which)) is not None:
                    out[key] = correct(prober.model, self.tokenizer, facts, c.prompt_format, c.batch_size)
        return out

    def layer_metrics(self, b: dict[str, torch.Tensor], s: dict[str, torch.Tensor]) -> list[tuple[int, str, float]]:
        """(layer, metric, value) for every probed layer: one model's tensors `s` against θ0's `b`. The output
        metrics (Rank-ρ, NTR, JSD) do not depend on the layer and repeat on each layer's rows."""
        return [(layer, metric, value) for layer in self.layers
                for metric, value in self.metrics(at_layer(b, layer), at_layer(s, layer)).items()]

    def metrics(self, b: dict[str, torch.Tensor], s: dict[str, torch.Tensor]) -> dict[str, float]:
        """The drift metrics of one model's tensors `s` against θ0's `b`, both of one layer."""
        out = {
            "RD": metrics.rd(b["held_states"], s["held_states"]),
            "NS": metrics.ns(b["held_states"][self.ns_rows], s["held_states"][self.ns_rows]),
        }
        new_key = "new_states" if "new_states" in s else "unk_states" if "unk_states" in s else None
        if new_key:
            out["MTD"] = metrics.mtd(b["held_states"], s["held_states"], b[new_key], s[new_key])
        if self.pairs is not None:
            u, h = self.pairs[:, 0], self.pairs[:, 1]
            base_at_i = b["held_topk_values"][h]
            out["Rank-rho"] = metrics.rank_rho(s["unk_at_base_topk"], base_at_i)
            out["NTR"] = metrics.ntr(s["unk_topk"][u], s["held_topk"][h])
            out["JSD"] = metrics.jsd(s["unk_at_base_topk"], base_at_i, self.config.jsd_log_base)
        for which, key in OUTCOME_KEYS.items():
            if key in s:
                out[f"accuracy_{which}"] = s[key].float().mean().item()
        return out


@contextlib.contextmanager
def evaluating(model):
    """`model` in eval mode for the block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def base_view(base_model, model):
    """θ0 as given, unless it is the very model a PEFT `model` wraps: then that model with adapters disabled."""
    if hasattr(model, "disable_adapter") and probed_module(model) is probed_module(base_model):
        return model.disable_adapter()
    return contextlib.nullcontext()


def drift(base_model, model, tokenizer, held, unknown=None, new=None, layer: int | None = None,
          k: int = metrics.DEFAULT_K, *, layers=None, run: str = "memory", name: str = "model", index: int = 0,
          **settings) -> pd.DataFrame:
    """The six drift metrics of `model` against `base_model` (θ0), both in memory, and (unless ``accuracy=False``)
    each model's greedy exact match on every fact set (``accuracy_held``, ...); nothing is written.

    held / unknown / new: lists of Facts, or a file or ``datasets.Dataset`` of facts. `layers`: several layers
    (numbers, or "all") read in one pass instead of `layer`, one row per layer × metric. `settings`: other
    ``ProbeConfig`` fields (ns_sample, max_pairs, seed, jsd_log_base, prompt_format, batch_size). Returns the
    columns of ``probes.csv`` (run, checkpoint, name, kind, index, layer, metric, value), checkpoint = `name`.
    """
    config = ProbeConfig(layer=layer, k=k, layers=layers, **settings)
    probe = DriftProbe(tokenizer, probed_module(model), as_facts(held), as_facts(unknown), as_facts(new), config)
    with torch.no_grad(), evaluating(base_model), evaluating(model), base_view(base_model, model):
        base = probe.capture(probe.prober(base_model))
    with torch.no_grad(), evaluating(model):
        states = probe.capture(probe.prober(model), base)
    rows = [[run, name, name, "step", index, layer, metric, value]
            for layer, metric, value in probe.layer_metrics(base, states)]
    return pd.DataFrame(rows, columns=COLUMNS)
