"""A checkpoint series probed with loads overlapped with capture vs one at a time, and --layers all vs one layer.

From the repository root with ``PYTHONPATH=.`` (it imports the checkout's ``training``, not installed):

    python bench/series_bench.py                                  # 12 checkpoints of the embedded SmolLM2-135M, CPU
    python bench/series_bench.py --arch qwen2.5-1.5b --device cuda  # random-weight Qwen2.5-1.5B on a GPU

The series: θ0 and `--checkpoints` copies of it, each with its own small weight perturbation, saved as safetensors
in the model's dtype (float32 for the embedded model) under `--work`. `--cache cold` (default) evicts every file
of the series from the page cache before each pass (posix_fadvise DONTNEED), as for a series larger than memory
or just written by another job; `--cache warm` reads every file first. Each side probes the whole series into a
fresh folder (nothing cached), `--held` held-out and `--unknown` unknown facts from EntityQuestions dev; rounds
rotate the order. Three sides: the obvious baseline (each checkpoint loaded with ``from_pretrained`` when its turn
comes), probekit's loads one at a time (on the CPU: read off the GIL and swapped into one model,
probekit.weight_swap) and probekit's loads overlapped with capture (the default). Reported: wall time per side
(median), the split of one pass of each side in turn into load and capture time, the speed-ups, and the max abs
difference of the tables (the same numbers). Then `--layers all` against the default layer, and the series under
torchrun with `--ranks` processes (the command line, each rank with its share of the cores) against the
one-process table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from probekit import series
from probekit.models import embedded_model_dir, load_model
from probekit.series import ProbeConfig, probe_series
from training.entityquestions import load_relation


def make_series(work: Path, n: int, arch: str | None, dtype: str | None = None, scale: float = 1e-3
                ) -> tuple[Path, list[Path]]:
    """θ0 and `n` perturbed copies of it under `work` (reused when already there)."""
    base = work / "base"
    if arch:
        from archs import random_model

        model, tokenizer = random_model(arch, dtype=getattr(torch, dtype) if dtype else None)
    else:
        model, tokenizer = load_model(embedded_model_dir(), device="cpu")
    if not (base / "config.json").exists():
        model.save_pretrained(base, safe_serialization=True)
        tokenizer.save_pretrained(base)
    paths = []
    for i in range(1, n + 1):
        path = work / "run" / f"checkpoint-{i}"
        if not (path / "config.json").exists():
            g = torch.Generator().manual_seed(i)
            copy = {k: v + scale * torch.randn(v.shape, generator=g).to(v.dtype) if v.is_floating_point() else v
                    for k, v in model.state_dict().items()}
            model.save_pretrained(path, state_dict=copy, safe_serialization=True)
            tokenizer.save_pretrained(path)
        paths.append(path)
    return base, paths


def facts(held: int, unknown: int):
    """Held-out facts and unknown facts that share answers with them (country questions, P17)."""
    pool = load_relation("P17", "dev") + load_relation("P495", "dev")
    return pool[:held], pool[held : held + unknown]


class FromPretrained:
    """Stands in for probekit.weight_swap.WeightSwap in the baseline: the loading thread builds each model."""

    def __init__(self, load, dtype):
        self.load = load

    def read(self, path):
        return self.load(path)

    def model(self, path, model):
        return model


SIDES = {  # side → (stand-in for WeightSwap or None, overlap_loads)
    "from_pretrained, in turn": (FromPretrained, False),
    "swapped, in turn": (None, False),
    "swapped, overlapped": (None, True),
}


def on_side(side: str, fn, *args, **kwargs):
    """`fn(*args, overlap_loads=..., **kwargs)` with the series' loads as `side` has them."""
    stand_in, overlap = SIDES[side]
    real = series.WeightSwap
    series.WeightSwap = stand_in or real
    try:
        return fn(*args, overlap_loads=overlap, **kwargs)
    finally:
        series.WeightSwap = real


class Timer:
    """Seconds spent loading (SeriesProbe.load, and WeightSwap.read when `swapped`) and capturing
    (SeriesProbe.capture), while patched in."""

    def __init__(self, swapped: bool):
        self.seconds = {"load": 0.0, "capture": 0.0}
        self.parts = [(series.SeriesProbe, "load", "load"), (series.SeriesProbe, "capture", "capture")]
        if swapped:
            self.parts.append((series.WeightSwap, "read", "load"))
        self.reals = []

    def __enter__(self):
        for cls, method, part in self.parts:
            self.reals.append((cls, method, getattr(cls, method)))
            setattr(cls, method, self._timed(getattr(cls, method), part))
        return self

    def __exit__(self, *exc):
        for cls, method, real in self.reals:
            setattr(cls, method, real)

    def _timed(self, real, part):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - t0

        return timed


def torchrun_once(base, paths, held, unknown, out, work, ranks: int, device: str) -> tuple[float, object]:
    """The same series through the command line under torchrun with `ranks` processes (one table, rank 0's)."""
    import pandas as pd

    from probekit.entities import fact_to_record
    from probekit.io import write_jsonl

    files = {}
    for name, facts_ in (("held", held), ("unknown", unknown)):
        files[name] = work / f"{name}.jsonl"
        write_jsonl(files[name], [fact_to_record(f) for f in facts_])
    shutil.rmtree(out, ignore_errors=True)
    set_cache([base, *paths], "cold")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), "-m",
           "probekit", "probe", "--checkpoints", *map(str, paths), "--base", str(base), "--held", str(files["held"]),
           "--unknown", str(files["unknown"]), "--out", str(out), "--device", device, "--no-accuracy"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, pd.read_csv(out / "probes.csv")


def set_cache(paths: list[Path], state: str) -> None:
    """Evict ("cold") or read ("warm") every safetensors file of the series."""
    for f in (f for p in paths for f in p.glob("*.safetensors")):
        if state == "warm":
            f.read_bytes()
            continue
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def probe_once(base, paths, held, unknown, out, cache="cold", **config) -> tuple[float, object]:
    shutil.rmtree(out, ignore_errors=True)
    set_cache([base, *paths], cache)
    t0 = time.perf_counter()
    table = probe_series(checkpoints=paths, base=str(base), held=held, unknown=unknown, out=out,
                         config=ProbeConfig(**config), progress=False)
    return time.perf_counter() - t0, table


def split(side, base, paths, held, unknown, out, **config) -> dict:
    """Load and capture seconds of one pass of `side` with its loads in turn (the stand-in class patched first)."""
    stand_in, _ = SIDES[side]
    real = series.WeightSwap
    swapped = stand_in is None
    series.WeightSwap = stand_in or real
    try:
        with Timer(swapped) as timer:
            wall, _ = probe_once(base, paths, held, unknown, out, overlap_loads=False, **config)
    finally:
        series.WeightSwap = real
    return {"wall_s": wall, "load_s": timer.seconds["load"], "capture_s": timer.seconds["capture"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=int, default=12)
    ap.add_argument("--held", type=int, default=200)
    ap.add_argument("--unknown", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--arch", default=None, help="a random-weight architecture from bench/archs.py (default: the "
                                                 "embedded model's real weights)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", default=None, help="folder for the series (default: a temporary one, removed)")
    ap.add_argument("--out", default=None, help="write the result JSON here")
    ap.add_argument("--cache", choices=["cold", "warm"], default="cold")
    ap.add_argument("--dtype", default=None, help="the random-weight checkpoints' dtype on disk (default float32)")
    ap.add_argument("--ranks", type=int, default=2, help="also probe the series under torchrun with this many "
                                                          "processes (0: skip)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="series-bench-"))
    base, paths = make_series(work, args.checkpoints, args.arch, args.dtype)
    held, unknown = facts(args.held, args.unknown)
    cfg = dict(device=args.device, cache=args.cache, accuracy=False)  # drift only: no greedy decoding
    probe_once(base, paths[:1], held, unknown, work / "warm", **cfg)  # imports, first-call costs
    sides = list(SIDES)
    times = {side: [] for side in sides}
    tables = {}
    for r in range(args.rounds):
        for side in sides[r % 3:] + sides[: r % 3]:  # rotated: each side first in one round of three
            wall, tables[side] = on_side(side, probe_once, base, paths, held, unknown, work / "side", **cfg)
            times[side].append(wall)
            print(f"round {r} {side}: {wall:.1f} s", flush=True)
    baseline = tables[sides[0]]["value"]
    diff = max(float((tables[side]["value"] - baseline).abs().max()) for side in sides[1:])
    parts = {side: split(side, base, paths, held, unknown, work / "split", **cfg) for side in sides[:2]}
    one, _ = probe_once(base, paths, held, unknown, work / "one-layer", overlap_loads=True, **cfg)
    every, table = probe_once(base, paths, held, unknown, work / "all-layers", layers="all", overlap_loads=True, **cfg)
    ranks = None
    if args.ranks:
        wall, ranked = torchrun_once(base, paths, held, unknown, work / "ranks", work, args.ranks, args.device)
        one_process = tables["swapped, in turn"]
        ranks = {"ranks": args.ranks, "wall_s": wall, "one_process_s": statistics.median(times["swapped, in turn"]),
                 "max_abs_table_difference": float((ranked["value"] - one_process["value"]).abs().max())}
    med = {side: statistics.median(t) for side, t in times.items()}
    result = {
        "model": args.arch or "embedded SmolLM2-135M-Instruct (real weights)", "device": args.device,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "checkpoints": args.checkpoints, "page_cache": args.cache, "held": len(held), "unknown": len(unknown),
        "rounds": args.rounds,
        "seconds": times, "median_s": med,
        "speedup_over_baseline": med["from_pretrained, in turn"] / med["swapped, overlapped"],
        "speedup_of_overlap": med["swapped, in turn"] / med["swapped, overlapped"],
        "split_in_turn": parts, "max_abs_table_difference": diff,
        "layers": {"one_s": one, "all_s": every, "all_over_one": every / one,
                   "layers": int(table["layer"].nunique())},
        "torchrun": ranks,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        from probekit.io import write_json

        write_json(args.out, result)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
