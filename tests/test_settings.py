"""One settings tree: every setting declared once (a class that needs it nests or reuses the declaring class's
``Field``), flags, presets and folder names unchanged by the nesting."""
from collections import defaultdict
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from analyses.profiles import PROFILES, ProbeSettings, Profile, RunSettings
from probekit.config import flat_values, from_namespace
from probekit.drift_probe import ProbeConfig
from probekit.errors import ProbekitError
from probekit.io import stable_hash
from training.__main__ import COMMANDS, _slick_preset, build_parser
from training.config import RunConfig, check_same_settings
from training.slick import SlickConfig
from training.splits import SplitConfig

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [Profile, SlickConfig, SplitConfig, RunSettings, ProbeSettings, RunConfig, ProbeConfig,
            *(settings for settings, _, _ in COMMANDS.values())]

# names declared more than once on purpose, each with why
EXCEPTIONS = {
    "seed": "the profile's one seed is passed down (SLiCK, splits, synthetic facts, training); ProbeConfig's seeds "
            "the NS subsample",
    "out": "each command's own output: a run folder, SLiCK's records folder, the splits folder, a JSONL file",
    "batch_size": "each computation's own: a training step (global), a probe's forward pass, a SLiCK decoding batch",
    "k": "top-k distillation's k (RunConfig) is not the probe's top-k metric size (ProbeConfig)",
}


def test_every_setting_is_declared_once():
    declared = defaultdict(dict)  # name → {id(Field): "Class.name"}
    for cls in SETTINGS:
        for f in fields(cls):
            if "section" not in f.metadata:  # a section holds settings; its own name is no setting
                declared[f.name].setdefault(id(f), f"{cls.__name__}.{f.name}")
    twice = {name: sorted(where.values()) for name, where in declared.items() if len(where) > 1}
    assert {n: w for n, w in twice.items() if n not in EXCEPTIONS} == {}
    assert set(EXCEPTIONS) <= set(twice), "an exception no longer needed"


def test_nested_sections_are_the_declaring_classes_fields():
    by_name = {f.name: f for f in fields(RunConfig)}
    assert all(f is by_name[f.name] for f in fields(RunSettings))
    assert fields(ProbeSettings)[0] is next(f for f in fields(ProbeConfig) if f.name == "layer") is by_name["layer"]
    assert next(f for f in fields(Profile) if f.name == "model") is by_name["model"]


@pytest.mark.parametrize("preset", sorted(PROFILES))
def test_the_analysis_flags_give_back_the_preset(preset):
    from analyses import fig3

    args = fig3.ANALYSIS.parser(["--profile", preset]).parse_args(["--profile", preset])
    assert from_namespace(Profile, args) == PROFILES[preset]
    assert set(flat_values(PROFILES[preset])) <= set(vars(args))


def test_flags_keep_their_names():
    from analyses import fig3

    flags = {s for a in fig3.ANALYSIS.parser([])._actions for s in a.option_strings}
    assert {"--slick-runs", "--slick-shots", "--slick-samples", "--slick-exemplars", "--use-slick", "--known-size",
            "--unknown-size", "--held-size", "--min-highly-known", "--allow-short", "--epochs", "--lr",
            "--batch-size", "--snapshot-epoch", "--lam", "--tau", "--eval-limit", "--keep", "--precision", "--device",
            "--layer", "--seed", "--seeds"} <= flags
    assert not {"--mix", "--slick-seed"} & flags  # the analyses' mix is 50/50; SLiCK takes the profile's seed
    run = {s for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions for s in a.option_strings}
    assert "--layer" in run and "--probe-layer" not in run


def test_the_profile_seed_seeds_its_sections():
    profile = PROFILES["standard"].replace(seed=4, epochs=7, slick_runs=2, known_size=9, layer=3)
    assert (profile.slick.seed, profile.splits.seed, profile.seed) == (4, 4, 4)
    assert (profile.run.epochs, profile.slick.runs, profile.splits.known_size, profile.probe.layer) == (7, 2, 9, 3)
    with pytest.raises(TypeError, match="slick_seed"):
        profile.replace(slick_seed=1)


def test_slick_preset_gives_the_defaults_and_flags_override_them():
    def config(*argv):
        args = build_parser(slick_preset=_slick_preset(["slick", *argv])).parse_args(["slick", *argv])
        return from_namespace(args.settings, args).slick

    assert config("--preset", "gekhman", "--runs", "3") == SlickConfig(runs=3, shots=4, samples=16)
    assert config() == SlickConfig()
    assert config("--sample-all", "--seed", "2", "--exemplars", "shared").sample_all is True


def test_the_layer_keeps_its_old_name_in_run_json():
    """A run.json naming probe_layer resumes as `layer` (run keys hash it as probe_layer:
    test_training_config.py::test_run_key_hashes_what_an_analysis_names)."""
    config = asdict(RunConfig(out="x", known="k.jsonl", layer=14))
    old = {("probe_layer" if k == "layer" else k): v for k, v in config.items()}
    check_same_settings(old, RunConfig(out="x", known="k.jsonl", layer=14), "x")
    with pytest.raises(ProbekitError, match="layer"):
        check_same_settings(old, RunConfig(out="x", known="k.jsonl", layer=3), "x")


def test_a_run_toml_may_name_the_layer_by_its_old_name(tmp_path):
    from probekit.config import read_toml
    from training.config import OLD_NAMES

    (tmp_path / "run.toml").write_text('out = "r"\nprobe_layer = 3\n')
    args = build_parser(read_toml(tmp_path / "run.toml", RunConfig, OLD_NAMES)).parse_args(["run"])
    assert from_namespace(RunConfig, args).layer == 3


def test_splits_and_slick_folders_keep_their_names():
    from analyses.data import data_key

    assert {p: stable_hash(["splits", data_key(profile)]) for p, profile in PROFILES.items()} == {
        "paper": "8d7dc598f707", "quick": "01bf322a37ba", "standard": "3d741b868268", "micro": "99194ba11609"}
    assert data_key(PROFILES["quick"].replace(slick_temperature=1.0)) != data_key(PROFILES["quick"])
    assert asdict(PROFILES["quick"].slick) == asdict(SlickConfig(runs=4, shots=3, samples=1,
                                                                         exemplars="shared", seed=0))


def test_old_and_new_manifests_give_their_shortfalls():
    from analyses.data import recorded_shortfalls

    sizes = {"known": 10, "unknown": 500, "held": 3}
    old = {"profile": {"known_size": 500, "unknown_size": 500, "held_size": None}, "sizes": sizes}
    new = {"profile": {"splits": {"known_size": 500, "unknown_size": 500, "held_size": None}}, "sizes": sizes}
    assert recorded_shortfalls(old) == recorded_shortfalls(new) == {"known": {"asked": 500, "available": 10,
                                                                             "used": 10}}


def test_the_archived_standard_runs_keep_their_keys(monkeypatch):
    """fig3's and fig5's runs of the standard profile, planned on the archived data, are the archived folders (so
    results/standard-runs re-renders without training)."""
    from analyses import fig3, fig5
    from analyses.data import Data
    from analyses.runs import seeded, training_seeds

    monkeypatch.chdir(ROOT)
    runs_dir = Path("results/standard-runs")
    if not (runs_dir / "data").is_dir():
        pytest.skip("no archived standard runs")
    keys = {}
    for module in (fig3, fig5):
        ctx = module.ANALYSIS.context(["--profile", "standard", "--runs-dir", str(runs_dir)])
        for group in seeded(module.ANALYSIS.plan(ctx, Data(runs_dir)), training_seeds(ctx.profile)):
            keys.update({f"{run.label} {run.config.seed}": run.key() for run in group})
    assert keys == {  # label and training seed → run key
        "SFT 0": "329e29b89300", "SFT 1": "08f2ea7efa79", "SFT 2": "0630276bcb49",
        "Self-distillation 0": "cd6fe292b4a1", "Self-distillation 1": "5688e56242e4",
        "Self-distillation 2": "c4c7fb30bcc3",
        "Only Known 0": "e3e8ed6da74f", "Only Known 1": "bd45a979d4ea", "Only Known 2": "f69f09def007",
        "SFT, semantic keys 0": "99fb9bd2ed48", "SFT, semantic keys 1": "ae2159a70bc9",
        "SFT, semantic keys 2": "5a49939b0cf7",
        "Self-distillation, semantic keys 0": "96228ba3f4a4", "Self-distillation, semantic keys 1": "3b578466cec3",
        "Self-distillation, semantic keys 2": "ecf516dc97ef",
        "SFT, UUID keys 0": "f14a41d67fe2", "SFT, UUID keys 1": "11f54286c97a", "SFT, UUID keys 2": "214482ca8ff4",
    }
    assert all(list(runs_dir.glob(f"*-{key}")) for key in keys.values())


def test_a_profile_takes_comma_separated_relations_and_pickles():
    import pickle

    assert PROFILES["standard"].replace(relations=["P17,P36"]).relations == ["P17", "P36"]
    assert pickle.loads(pickle.dumps(PROFILES["quick"])) == PROFILES["quick"]  # its sections are module-level classes
