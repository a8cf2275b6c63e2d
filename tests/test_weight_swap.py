"""probekit.weight_swap: checkpoints read off the GIL and swapped into one model give the model from_pretrained
gives, bit for bit, on every family; anything that does not fit falls back to from_pretrained."""
import os
import shutil
from pathlib import Path

import pytest
import torch

from probekit import series, weight_swap
from probekit.errors import ProbekitError
from probekit.models import load_causal_lm
from probekit.prefetch import OneAhead
from probekit.series import ProbeConfig, probe_series
from probekit.weight_swap import WeightSwap, read_weights

from .conftest import tiny_model

INPUT = torch.tensor([[5, 17, 42, 99, 3, 250]])


@pytest.fixture(params=["read", "mapped"])
def reads(request, monkeypatch):
    """Each test twice: files read into buffers (as when not in the page cache) and files mapped (as when they are)."""
    monkeypatch.setattr(weight_swap, "in_page_cache", lambda file: request.param == "mapped")
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
    for path, calls in ((tied, 1), (untied, 2), (tied, 3), (tied, 3)):
        same_model(swap.model(path, swap.read(path)), path)
        assert loads.calls == calls, path.name


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
    monkeypatch.setattr(weight_swap, "in_page_cache", lambda file: False)
    made = []
    new_buffer = weight_swap._new_buffer
    monkeypatch.setattr(weight_swap, "_new_buffer", lambda size: made.append(size) or new_buffer(size))
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


def test_a_file_system_that_refuses_direct_reads_is_read_through_the_page_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(weight_swap, "in_page_cache", lambda file: False)
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
    if weight_swap.in_page_cache(file):
        pytest.skip("this file system keeps the pages (tmpfs)")
    file.read_bytes()
    assert weight_swap.in_page_cache(file)


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
    swapped = probe_series(run, out=tmp / "swapped", progress=False, **facts)
    monkeypatch.setattr(series, "WeightSwap", FromPretrained)
    loaded = probe_series(run, out=tmp / "loaded", progress=False, **facts)
    assert swapped.drop(columns="value").equals(loaded.drop(columns="value"))
    assert (swapped["value"] - loaded["value"]).abs().max() == 0
