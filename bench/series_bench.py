"""A checkpoint series probed four ways (models rebuilt or reused, loads overlapped or not), and --layers all vs
one layer.

    python bench/series_bench.py                                  # 12 checkpoints of the embedded SmolLM2-135M, CPU
    python bench/series_bench.py --arch qwen2.5-1.5b --device cuda  # random-weight Qwen2.5-1.5B on a GPU

The series: θ0 and `--checkpoints` copies of it, each with its own small weight perturbation, saved as safetensors
in the model's dtype (float32 for the embedded model) under `--work`. `--cache cold` (default) evicts every file
of the series from the page cache before each pass (posix_fadvise DONTNEED), as for a series larger than memory
or just written by another job; `--cache warm` reads every file first. Each side probes the whole series into a
fresh folder (nothing cached), `--held` held-out and `--unknown` unknown facts from EntityQuestions dev; the order
of the sides rotates each round. The sides (SIDES): "rebuilt", the obvious baseline (from_pretrained per checkpoint,
one after another), the same with the next load overlapped, and the same two with each checkpoint's weights copied
into a model already built (`--reuse-models`, probekit.reload). Reported: wall time per side (median), each side's
speed-up over "rebuilt", the split of one pass without overlap into load and capture time (rebuilt and reused),
and the max abs difference of the tables (the same numbers). Then `--layers all` against the default layer, and
the series under torchrun with `--ranks` processes (the command line, each rank with its share of the cores)
against the one-process table.
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


class Timer:
    """Seconds spent loading and capturing (SeriesProbe.load and .capture, reload.copy_weights wrapped while one
    pass without overlap is timed)."""

    def __init__(self):
        self.load = self.capture = 0.0

    def add(self, name, func, *args, **kwargs):
        """func(*args, **kwargs), its seconds added to `name`."""
        t0 = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            setattr(self, name, getattr(self, name) + time.perf_counter() - t0)


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


SIDES = {  # side → ProbeConfig settings; "rebuilt" is the obvious baseline: from_pretrained per checkpoint, in turn
    "rebuilt": dict(reuse_models=False, overlap_loads=False),
    "rebuilt, overlapped": dict(reuse_models=False, overlap_loads=True),
    "reused": dict(reuse_models=True, overlap_loads=False),
    "reused, overlapped": dict(reuse_models=True, overlap_loads=True),
}


def split(base, paths, held, unknown, out, **config) -> dict:
    """Load and capture seconds of one pass without overlap (a reused model's load is its in-place copy)."""
    from probekit import reload

    timer = Timer()
    reals = {(series.SeriesProbe, "load"): "load", (series.SeriesProbe, "capture"): "capture",
             (reload, "copy_weights"): "load"}
    saved = {owner_name: getattr(*owner_name) for owner_name in reals}
    for (owner, name), what in reals.items():
        real = saved[(owner, name)]
        setattr(owner, name, lambda *a, _real=real, _what=what, **kw: timer.add(_what, _real, *a, **kw))
    try:
        wall, _ = probe_once(base, paths, held, unknown, out, **config)
    finally:
        for (owner, name), real in saved.items():
            setattr(owner, name, real)
    return {"wall_s": wall, "load_s": timer.load, "capture_s": timer.capture}


def timed_sides(base, paths, held, unknown, work, rounds: int, **cfg) -> tuple[dict, dict]:
    """Seconds of every side in SIDES per round (the order rotated each round), and each side's last table."""
    times, tables = {side: [] for side in SIDES}, {}
    order = list(SIDES)
    for r in range(rounds):
        for side in order[r % len(order):] + order[: r % len(order)]:
            wall, tables[side] = probe_once(base, paths, held, unknown, work / "side", **SIDES[side], **cfg)
            times[side].append(wall)
            print(f"round {r} {side}: {wall:.1f} s", flush=True)
    return times, tables


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
    times, tables = timed_sides(base, paths, held, unknown, work, args.rounds, **cfg)
    diff = max(float((t["value"] - tables["rebuilt"]["value"]).abs().max()) for t in tables.values())
    parts = {side: split(base, paths, held, unknown, work / "split", **SIDES[side], **cfg)
             for side in ("rebuilt", "reused")}
    one, _ = probe_once(base, paths, held, unknown, work / "one-layer", **cfg)
    every, table = probe_once(base, paths, held, unknown, work / "all-layers", layers="all", **cfg)
    ranks = None
    if args.ranks:
        wall, ranked = torchrun_once(base, paths, held, unknown, work / "ranks", work, args.ranks, args.device)
        one_process = tables["rebuilt"]
        ranks = {"ranks": args.ranks, "wall_s": wall, "one_process_s": statistics.median(times["rebuilt"]),
                 "max_abs_table_difference": float((ranked["value"] - one_process["value"]).abs().max())}
    med = {side: statistics.median(t) for side, t in times.items()}
    result = {
        "model": args.arch or "embedded SmolLM2-135M-Instruct (real weights)", "device": args.device,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "checkpoints": args.checkpoints, "page_cache": args.cache, "held": len(held), "unknown": len(unknown),
        "rounds": args.rounds,
        "seconds": times, "median_s": med, "speedup_over_rebuilt": {s: med["rebuilt"] / m for s, m in med.items()},
        "split_without_overlap": parts, "max_abs_table_difference": diff,
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
