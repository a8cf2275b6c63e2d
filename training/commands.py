"""The settings of ``python -m training``'s data commands (``run``'s are ``RunConfig``): each a command's own
fields beside the settings class it nests (``SlickConfig``, ``SplitConfig``), every field a flag."""
from __future__ import annotations

from dataclasses import dataclass

from probekit.config import declared, nested, option

from .config import RunConfig
from .slick import PRESETS, SlickConfig
from .splits import SplitConfig

DATA_HELP = "an EntityQuestions dataset/ directory (unset: the bundled copy)"


def relation_ids(relations: list[str]) -> list[str]:
    """The relation ids of a ``--relations`` value, comma-separated items split (P17 P36 or P17,P36)."""
    return [r.strip() for item in relations for r in item.split(",") if r.strip()]


@dataclass
class SlickCommand:
    """``slick``: classify questions into SLiCK knowledge categories."""

    model: str = declared(RunConfig, "model")
    relations: list[str] = option(help="EntityQuestions relation ids (P17 P36 or P17,P36)",
                                  default_factory=lambda: ["P17", "P36", "P407", "P495"])
    split: str = option("dev", "EntityQuestions split to classify", choices=["train", "dev", "test"])
    limit: int | None = option(None, "first N questions of each relation (unset: all)")
    preset: str = option("study", "the defaults of the SLiCK flags: study (20 runs × 3 shots, 1 sample/run), "
                         "gekhman (10 runs × 4 shots, 16 samples/run)", choices=list(PRESETS))
    batch_size: int | None = option(None, "questions per decoding batch (unset: 32 on CPU, 256 on a GPU)")
    device: str | None = declared(RunConfig, "device")
    data: str | None = option(None, DATA_HELP)
    out: str = option("data/slick", "folder for <relation>.<split>.jsonl (resumable)")
    slick: SlickConfig = nested(SlickConfig)

    def relation_ids(self) -> list[str]:
        return relation_ids(self.relations)


@dataclass
class SplitsCommand:
    """``splits``: D_Known, D_Unk, D_Held (+ MaybeKnown, WeaklyKnown) from SLiCK results."""

    slick: str = option(help="folder with SLiCK results for train and dev")
    out: str = option(help="folder for the split JSONL files and manifest.json")
    splits: SplitConfig = nested(SplitConfig)


@dataclass
class SyntheticCommand:
    """``synthetic``: synthetic P17 facts with semantic (token-mix) or UUID keys."""

    out: str = option(help="JSONL file to write")
    n: int = option(10_000, "number of facts")
    keys: str = option("semantic", "entity names: token mixes or UUIDs", choices=["semantic", "uuid"])
    values: str = option("real", "answers: real countries, token mixes or UUIDs", choices=["real", "semantic", "uuid"])
    model: str = declared(RunConfig, "model")  # its tokenizer builds the token-mix names
    seed: int = option(0, "sampling seed")
    data: str | None = declared(SlickCommand, "data")
