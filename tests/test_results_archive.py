"""The archived runs under results/ (the README's measured numbers): each is a finished run the analyses reuse as it
is, self-contained in the repository (its data files there, named relative to the repository root) and with its
per-item drift values wherever it was probed, so that intervals and paired tests survive without the states."""
import subprocess
from pathlib import Path

import pytest

from training.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def _tracked(pathspec: str) -> list[str] | None:
    """The files git tracks under `pathspec`, relative to the root (None outside a git checkout)."""
    listed = subprocess.run(["git", "ls-files", pathspec], cwd=ROOT, capture_output=True, text=True)
    return None if listed.returncode else listed.stdout.splitlines()


def _archived_runs() -> list[Path]:
    """The run folders committed under results/ (all of them outside a git checkout); a run still training there
    is not archived until it is committed."""
    tracked = _tracked("results/*/*/run.json")
    files = (ROOT / "results").glob("*/*/run.json") if tracked is None else [ROOT / f for f in tracked]
    return sorted(f.parent for f in files)


RUNS = _archived_runs()


@pytest.mark.parametrize("folder", RUNS, ids=[f"{p.parent.name}/{p.name}" for p in RUNS])
def test_an_archived_run_is_finished_and_self_contained(folder):
    run = RunDir(folder)
    config = run.record()["config"]
    assert [r["epoch"] for r in run.records()] == list(range(config["epochs"] + 1)), "a run archived unfinished"
    for split in ("train", "known", "unknown", "held", "maybe_known", "weakly_known"):
        path = config.get(split)
        if path:
            assert not Path(path).is_absolute() and (ROOT / path).is_file(), f"{split}: {path}"
    if config.get("probe"):
        assert run.probe_items.is_file(), "render once with the analyses so the per-item drift is kept"


def test_the_archive_keeps_no_weights():
    """results/.gitignore leaves out checkpoints, optimizer state, teacher snapshots and cached states."""
    tracked = _tracked("results")
    if tracked is None:
        pytest.skip("not a git checkout")
    heavy = {"checkpoints", "state", "teacher", "states", ".teacher-cache", ".base-probes"}
    assert not [f for f in tracked if heavy & set(Path(f).parts[:-1])]
