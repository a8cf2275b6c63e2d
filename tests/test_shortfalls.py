"""Pools smaller than asked: recorded in the splits' manifest and in captions; a 50/50 mix more than 10 points from
the asked share of D_Known is refused unless allow_short is set."""
import json

import pytest

from analyses.data import Data, data_key, shortfall_note
from analyses.profiles import PROFILES
from probekit.errors import ProbekitError
from training.__main__ import main
from training.splits import SplitConfig, make_splits, write_splits


def slick_records(relation, split, counts):
    """Hand-made SLiCK records: `counts` questions of each category."""
    return [{"question": f"{relation} {split} {cat} {i}?", "answers": ["a"], "entity_span": [0, 1],
             "relation": relation, "category": cat} for cat, n in counts.items() for i in range(n)]


def pools(known, unknown, held):
    return ({"P1": slick_records("P1", "train", {"HighlyKnown": known, "Unknown": unknown})},
            {"P1": slick_records("P1", "dev", {"HighlyKnown": held, "MaybeKnown": 3})})


def test_manifest_records_asked_available_and_used(tmp_path):
    train, dev = pools(known=30, unknown=50, held=5)
    config = SplitConfig(known_size=32, unknown_size=32, held_size=8)
    manifest = write_splits(make_splits(train, dev, config), tmp_path, config, ["P1"], {})
    expected = {"known": {"asked": 32, "available": 30, "used": 30}, "held": {"asked": 8, "available": 5, "used": 5}}
    assert manifest["shortfalls"] == expected
    assert json.loads((tmp_path / "manifest.json").read_text())["shortfalls"] == expected
    assert manifest["sizes"]["known"] == 30 and manifest["sizes"]["train"] == 62
    enough = SplitConfig(known_size=20, unknown_size=20, held_size=5)
    assert write_splits(make_splits(train, dev, enough), tmp_path / "ok", enough, ["P1"], {})["shortfalls"] == {}


def test_a_mix_far_from_the_asked_share_is_refused_unless_allowed():
    train, dev = pools(known=242, unknown=1500, held=5)
    with pytest.raises(ProbekitError) as refused:
        make_splits(train, dev, SplitConfig(known_size=1000, unknown_size=1000))
    message = str(refused.value)
    assert "\n" not in message and "19.5%" in message and "50.0%" in message and "--allow-short" in message
    assert "D_Known: asked for 1,000 questions but only 242" in message
    allowed = make_splits(train, dev, SplitConfig(known_size=1000, unknown_size=1000, allow_short=True))
    assert (len(allowed["known"]), len(allowed["unknown"]), len(allowed["train"])) == (242, 1000, 1242)
    # D_Known alone is the asked mix whatever its size
    only = SplitConfig(known_size=1000, unknown_size=1000, mix="only-known")
    assert len(make_splits(train, dev, only)["train"]) == 242


def test_ten_points_is_the_limit():
    train, dev = pools(known=40, unknown=100, held=5)
    config = SplitConfig(known_size=60, unknown_size=60)
    assert len(make_splits(train, dev, config)["known"]) == 40  # 40%: 10 points off
    train, dev = pools(known=39, unknown=100, held=5)
    with pytest.raises(ProbekitError, match="39.4%"):
        make_splits(train, dev, SplitConfig(known_size=60, unknown_size=60))


def test_quick_profile_sizes_are_not_refused_when_pools_suffice():
    quick = PROFILES["quick"]
    s = quick.splits
    config = SplitConfig(known_size=s.known_size, unknown_size=s.unknown_size, held_size=s.held_size)
    full = make_splits(*pools(known=100, unknown=100, held=80), config)
    assert (len(full["known"]), len(full["unknown"]), len(full["held"])) == (64, 64, 64)
    # the embedded model's quick pools: 62 HighlyKnown train questions, 38 dev (49.2% of the mix: accepted)
    short = make_splits(*pools(known=62, unknown=100, held=38), config)
    assert (len(short["known"]), len(short["unknown"]), len(short["held"])) == (62, 64, 38)


def test_the_caption_note(tmp_path):
    assert shortfall_note({"sizes": {"known": 8}, "shortfalls": {}}) == ""
    manifest = {"shortfalls": {"known": {"asked": 1000, "available": 242, "used": 242},
                               "held": {"asked": 64, "available": 38, "used": 38}}}
    assert shortfall_note(manifest) == "D_Known 242 of 1,000 asked, D_Held 38 of 64 asked"
    # splits written before shortfalls were recorded: from the profile's sizes (under their old names)
    old = {"profile": {"known": 64, "unknown": 64, "held": 64},
           "sizes": {"known": 62, "unknown": 64, "held": 38, "maybe_known": 35, "weakly_known": 10, "train": 126}}
    assert shortfall_note(old) == "D_Known 62 of 64 asked, D_Held 38 of 64 asked"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    note = "D_Known 242 of 1,000 asked, D_Held 38 of 64 asked"
    assert shortfall_note(tmp_path) == shortfall_note(tmp_path / "manifest.json") == note
    assert shortfall_note(str(tmp_path / "known.jsonl")) == note
    assert shortfall_note("<known>.jsonl") == ""  # a dry run's placeholder


def test_the_caption_names_each_models_shortfall(tmp_path):
    """families trains two models on two splits: both notes reach the caption, each under its model."""
    from types import SimpleNamespace

    from analyses.analysis import runs_shortfall
    from training.config import RunConfig

    def run(model, folder, known, held):
        config = SplitConfig(known_size=64, unknown_size=64, held_size=64)
        write_splits(make_splits(*pools(known=known, unknown=100, held=held), config), tmp_path / folder, config,
                     ["P1"], {})
        return SimpleNamespace(run=SimpleNamespace(config=RunConfig(model=model,
                                                                    known=str(tmp_path / folder / "known.jsonl"))))

    smol, gemma = run("embedded", "a", known=62, held=38), run(str(tmp_path / "gemma3-270m"), "b", known=80, held=52)
    note = shortfall_note(tmp_path / "a")
    assert set(note.split(", ")) == {"D_Known 62 of 64 asked", "D_Held 38 of 64 asked"}
    assert runs_shortfall([smol, smol]) == note
    assert runs_shortfall([smol, gemma]) == f"SmolLM2-135M-Instruct: {note}; gemma3-270m: D_Held 52 of 64 asked"


def test_analysis_splits_refused_recorded_and_reused(tmp_path, capsys):
    """Micro profile (no model asked): 12 HighlyKnown / 12 Unknown train questions of P17."""
    short = PROFILES["micro"].replace(known_size=40, unknown_size=8)
    assert data_key(short.replace(allow_short=True)) == data_key(short)  # folder names do not change
    with pytest.raises(ProbekitError, match="--allow-short"):
        Data(tmp_path).splits(short)
    paths = Data(tmp_path).splits(short.replace(allow_short=True))
    assert "D_Known 12 of 40 asked" in capsys.readouterr().out
    assert shortfall_note(paths["known"]) == "D_Known 12 of 40 asked"
    with pytest.raises(ProbekitError, match="60.0% of D_Known ∪ D_Unk, not the 83.3% asked"):
        Data(tmp_path).splits(short)  # the folder written with allow_short is not reused without it
    assert shortfall_note(Data(tmp_path).splits(PROFILES["micro"])["held"]) == ""


def test_splits_command_allow_short(tmp_path, capsys):
    train, dev = pools(known=10, unknown=60, held=5)
    slick = tmp_path / "slick"
    slick.mkdir()
    for split, records in (("train", train), ("dev", dev)):
        (slick / f"P1.{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records["P1"]))
    argv = ["splits", "--slick", str(slick), "--out", str(tmp_path / "out"), "--known-size", "40", "--unknown-size",
            "40"]
    assert main(argv) == 2
    assert "--allow-short" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main([*argv, "--allow-short"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["shortfalls"] == {"known": {"asked": 40, "available": 10, "used": 10}}
    assert manifest["config"]["allow_short"] is True


def test_the_synthetic_setting_takes_a_short_d_known(tmp_path):
    """fig5's setting trains on D_Known ∪ synthetic facts, not on D_Unk: a short D_Known is taken whole (the standard
    profile's P17 has 173 HighlyKnown train questions of 500 asked), where fig3's pooled setting refuses it."""
    from analyses.profiles import synthetic_profile

    short = PROFILES["micro"].replace(known_size=40, unknown_size=8)
    paths = Data(tmp_path).splits(synthetic_profile(short))
    assert shortfall_note(paths["known"]) == "D_Known 12 of 40 asked"
    assert data_key(synthetic_profile(short)) == data_key(short)  # the same folder as fig3's P17 splits
