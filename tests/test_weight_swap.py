"""probekit.weight_reads and weight_swap: checkpoints read off the GIL and swapped into one model give the model
from_pretrained gives, bit for bit, on every family; anything that does not fit falls back to from_pretrained."""
import errno
import json
import os
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from probekit import series, weight_reads
from probekit.errors import ProbekitError
from probekit.models import load_causal_lm
from probekit.prefetch import OneAhead
from probekit.series import ProbeConfig, probe_series
from probekit.weight_reads import read_weights
from probekit.weight_swap import WeightSwap

from .conftest import tiny_model

INPUT = torch.tensor([[5, 17, 42, 99, 3, 250]])


@pytest.fixture(params=["read", "mapped"])
def reads(request, monkeypatch):
    """Each test twice: files read into buffers (as when not in the page cache) and files mapped (as when they are)."""
    monkeypatch.setattr(weight_reads, "in_page_cache", lambda file: request.param == "mapped")
    return request.param


class Loads:
    """from_pretrained on the CPU, counting its calls."""

    def __init__(self, dtype=torch.float32):
        self.dtype, self.calls = dtype, 0

    def __call__(self, path):
        self.calls += 1
        return load_causal_lm(path, device="cpu", dtype=self.dtype)


def save(model, path: Path, state_dict=None, **kwargs) -> Path:
    model.save_pretrained(path, safe_serialization=True, state_dict=state_dict, **kwargs)
    return path


def same_model(got, path: Path, dtype=torch.float32) -> None:
    """`got` has from_pretrained's state dict and logits for `path`, exactly."""
    want = load_causal_lm(path, device="cpu", dtype=dtype)
    got_state, want_state = got.state_dict(), want.state_dict()
    assert got_state.keys() == want_state.keys()
    for name, tensor in want_state.items():
        assert torch.equal(got_state[name], tensor), name
    with torch.no_grad():
        assert torch.equal(got(INPUT).logits, want(INPUT).logits)


@pytest.mark.parametrize("family", ["qwen2", "llama", "gpt2", "gemma3_text", "opt"])
def test_a_swapped_model_is_the_model_from_pretrained_gives(tmp_path, family, reads):
    loads = Loads()
    swap = WeightSwap(loads, torch.float32)
    first = save(tiny_model(family, seed=0), tmp_path / "a")
    model = swap.model(first, swap.read(first))
    same_model(model, first)
    for seed in (1, 2):
        path = save(tiny_model(family, seed=seed), tmp_path / f"s{seed}")
        assert swap.model(path, swap.read(path)) is model  # swapped in, not built again
        same_model(model, path)
    assert loads.calls == 1


def test_a_file_that_unties_or_reties_the_embeddings_loads_with_from_pretrained(tmp_path, reads):
    loads = Loads()
    swap = WeightSwap(loads, torch.float32)
    model = tiny_model("gpt2", seed=0)  # ties lm_head to the input embeddings
    tied = save(model, tmp_path / "tied")
    untied_state = {k: v.clone() for k, v in model.state_dict().items()}
    untied_state["lm_head.weight"] = untied_state["lm_head.weight"] + 0.01
    untied = save(model, tmp_path / "untied", state_dict=untied_state)
    assert "lm_head.weight" in read_weights(untied, torch.float32).tensors
    assert "lm_head.weight" not in read_weights(tied, torch.float32).tensors
    for path, calls in ((tied, 1), (untied, 2)):
        same_model(swap.model(path, read := swap.read(path)), path)
        assert loads.calls == calls and isinstance(read, weight_reads.Weights), path.name
    for calls, path in enumerate((tied, untied, tied), start=3):  # no longer read: the loading thread builds them
        assert isinstance(read := swap.read(path), torch.nn.Module) and loads.calls == calls
        same_model(swap.model(path, read), path)


def test_a_checkpoint_with_keys_the_model_lacks_loads_with_from_pretrained(tmp_path):
    """An extra tensor from_pretrained ignores: the swap declines it, and after the first decline the loading
    thread builds each model of that config instead of reading files it cannot use."""
    loads = Loads()
    swap = WeightSwap(loads, torch.float32)
    paths = []
    for seed in range(3):
        state = tiny_model("qwen2", seed=seed).state_dict()
        paths.append(save(tiny_model("qwen2", seed=seed), tmp_path / str(seed),
                          state_dict={**state, "extra.weight": torch.ones(3)}))
    kinds = []
    for path in paths:
        read = swap.read(path)
        kinds.append(type(read).__name__)
        same_model(swap.model(path, read), path)
    assert kinds == ["Weights", "Weights", "Qwen2ForCausalLM"] and loads.calls == 3


def test_from_pretrained_s_choice_of_files_is_kept(tmp_path):
    """model.safetensors before an index (a stale index left by a re-save; shards beside it), and a shard missing,
    an adapter or a dtype this reader does not know: from_pretrained's business."""
    sharded = save(tiny_model("llama", seed=1), tmp_path / "sharded", max_shard_size="150KB")
    stale = save(tiny_model("llama", seed=2), tmp_path / "stale")
    shutil.copy(sharded / "model.safetensors.index.json", stale)
    both = save(tiny_model("llama", seed=3), tmp_path / "both")
    for shard in sharded.glob("model-*.safetensors"):
        shutil.copy(shard, both)
    shutil.copy(sharded / "model.safetensors.index.json", both)
    swap = WeightSwap(Loads(), torch.float32)
    for path in (sharded, stale, both):
        same_model(swap.model(path, swap.read(path)), path)
    next(sharded.glob("model-*.safetensors")).unlink()
    assert read_weights(sharded, torch.float32) is None
    with pytest.raises(ProbekitError, match="cannot load the weights"):
        swap.model(sharded, swap.read(sharded))
    odd = save(tiny_model("llama"), tmp_path / "odd")
    save_file({**load_file(odd / "model.safetensors"), "counts": torch.zeros(4, dtype=torch.uint16)},
              odd / "model.safetensors", metadata={"format": "pt"})
    assert read_weights(odd, torch.float32) is None


def test_an_unaligned_tensor_and_a_direct_read_refused_midway_are_read_right(tmp_path, monkeypatch):
    monkeypatch.setattr(weight_reads, "in_page_cache", lambda file: False)
    header = {"a": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [3, 11]}}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    folder = tmp_path / "handmade"
    folder.mkdir()
    b = torch.tensor([1.5, -2.25])
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + bytes([7, 8, 9])
                                               + b.numpy().tobytes())
    calls = []
    real = os.preadv

    def refuse_the_first(fd, buffers, offset):
        calls.append(offset)
        if len(calls) == 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", refuse_the_first)
    tensors = read_weights(folder, torch.float32).tensors
    assert len(calls) == 2 and tensors["a"].tolist() == [7, 8, 9] and torch.equal(tensors["b"], b)


def test_a_then_that_raises_leaves_the_next_load_running():
    def then(item, loaded):
        if item == "b":
            raise ProbekitError("cannot use b")
        return loaded

    with OneAhead(["a", "b", "c"], str.upper, True, then) as ahead:
        assert ahead.take(0) == "A"
        with pytest.raises(ProbekitError, match="cannot use b"):
            ahead.take(1)
        assert ahead.take(2) == "C"


@pytest.mark.parametrize("stored, probed", [(torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16)])
def test_weights_are_cast_as_from_pretrained_casts_them(tmp_path, stored, probed, reads):
    swap = WeightSwap(Loads(probed), probed)
    paths = [save(tiny_model("qwen2", seed=s).to(stored), tmp_path / str(s)) for s in (0, 1)]
    for path in paths:
        same_model(swap.model(path, swap.read(path)), path, probed)


def test_a_sharded_checkpoint_is_read_whole(tmp_path, reads):
    model = tiny_model("llama", seed=3)
    path = save(model, tmp_path / "sharded", max_shard_size="150KB")
    assert len(list(path.glob("model-*.safetensors"))) > 1
    tensors = read_weights(path, torch.float32).tensors
    assert tensors.keys() == {k for k in model.state_dict()}
    swap = WeightSwap(Loads(), torch.float32)
    swap.model(save(tiny_model("llama"), tmp_path / "base"), swap.read(tmp_path / "base"))
    same_model(swap.model(path, swap.read(path)), path)


def test_reads_reuse_the_buffers_the_model_let_go(tmp_path, monkeypatch):
    monkeypatch.setattr(weight_reads, "in_page_cache", lambda file: False)
    made = []
    new_buffer = weight_reads._new_buffer
    monkeypatch.setattr(weight_reads, "_new_buffer", lambda size: made.append(size) or new_buffer(size))
    paths = [save(tiny_model("qwen2", seed=s), tmp_path / str(s)) for s in range(5)]
    loads = Loads()
    swap = WeightSwap(loads, torch.float32)
    with OneAhead(paths, swap.read, True, swap.model) as ahead:
        for i, path in enumerate(paths):
            same_model(ahead.take(i), path)
    assert loads.calls == 1 and len(made) == 2  # the model's buffer and the one being read into


def test_a_truncated_file_is_named_and_a_folder_without_safetensors_loads_as_before(tmp_path):
    path = save(tiny_model("qwen2"), tmp_path / "cut")
    file = path / "model.safetensors"
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(ProbekitError, match="truncated"):
        read_weights(path, torch.float32)
    assert read_weights(tmp_path, torch.float32) is None
    marker = object()
    assert WeightSwap(lambda p: marker, torch.float32).model(tmp_path, None) is marker


def test_a_file_on_tmpfs_is_read_right(tmp_path, monkeypatch):
    monkeypatch.setattr(weight_reads, "in_page_cache", lambda file: False)
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no tmpfs at /dev/shm")
    path = save(tiny_model("qwen2", seed=4), tmp_path / "disk")
    folder = Path(shutil.copytree(path, shm / f"probekit-test-{tmp_path.name}"))
    try:
        swap = WeightSwap(Loads(), torch.float32)
        swap.model(path, swap.read(path))
        same_model(swap.model(folder, swap.read(folder)), folder)
    finally:
        shutil.rmtree(folder)


def test_in_page_cache_says_whether_a_file_s_pages_are_resident(tmp_path):
    file = tmp_path / "weights.bin"
    with file.open("wb") as fh:
        fh.write(torch.randn(1 << 20).numpy().tobytes())
        fh.flush()
        os.fsync(fh.fileno())  # written back, so that the pages can be dropped
    fd = os.open(file, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    if weight_reads.in_page_cache(file):
        pytest.skip("this file system keeps the pages (tmpfs)")
    file.read_bytes()
    assert weight_reads.in_page_cache(file)


class FromPretrained:
    """The series' loads before weight swapping: the loading thread builds every model."""

    def __init__(self, load, dtype):
        self.read = load

    def model(self, path, model):
        return model


@pytest.mark.parametrize("overlap", [False, True])
def test_a_series_probed_with_swaps_equals_one_loaded_checkpoint_by_checkpoint(tiny_series, monkeypatch, overlap,
                                                                               reads):
    from probekit.entities import read_facts

    tmp, run, base, held, unk = tiny_series
    facts = dict(held=read_facts(held), unknown=read_facts(unk), config=ProbeConfig(k=5, overlap_loads=overlap))
    built = []
    real_load = series.SeriesProbe.load
    monkeypatch.setattr(series.SeriesProbe, "load", lambda probe, path: built.append(path) or real_load(probe, path))
    swapped = probe_series(run, out=tmp / "swapped", progress=False, **facts)
    assert len(built) == 2  # θ0 and the first checkpoint; the other two swapped in
    monkeypatch.setattr(series, "WeightSwap", FromPretrained)
    loaded = probe_series(run, out=tmp / "loaded", progress=False, **facts)
    assert len(built) == 2 + 4
    assert swapped.drop(columns="value").equals(loaded.drop(columns="value"))
    assert (swapped["value"] - loaded["value"]).abs().max() == 0
