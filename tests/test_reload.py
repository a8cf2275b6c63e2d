"""probekit.reload: a checkpoint copied into a model already built equals the model from_pretrained builds, and the
series' table is the same with and without reuse."""
import pandas as pd
import pytest
import torch

from probekit.cli import main
from probekit.models import load_causal_lm
from probekit.reload import Reloader, copy_weights

from .conftest import byte_bpe_tokenizer, save_checkpoint, tiny_model
from .support.series import perturb, probe_args


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("arch", ["qwen2", "gpt2", "gemma3_text"])
def test_a_copied_checkpoint_equals_a_built_one(tmp_path, arch):
    tok = byte_bpe_tokenizer()
    for i in range(3):
        save_checkpoint(perturb(tiny_model(arch, len(tok)), 0.05, i), tok, tmp_path / f"c{i}")
    build = lambda p: load_causal_lm(p, dtype="float32", device="cpu")  # noqa: E731
    reloader = Reloader(build, "cpu", slots=2)
    models = [reloader(tmp_path / f"c{i}") for i in range(3)]
    assert models[2] is models[0] and reloader.built == 2 and reloader.copied == 1
    assert _same_weights(models[2], build(tmp_path / "c2"))
    tied = models[2].get_output_embeddings().weight.data_ptr() == models[2].get_input_embeddings().weight.data_ptr()
    assert tied == (arch != "qwen2")  # a tied output layer is filled through the input embedding the file holds


def test_a_checkpoint_that_does_not_fit_is_built_afresh(tmp_path):
    tok = byte_bpe_tokenizer()
    save_checkpoint(tiny_model("qwen2", len(tok)), tok, tmp_path / "a")
    other = tiny_model("qwen2", len(tok))
    other.config.rope_theta = 5000.0  # same tensors, another computation
    save_checkpoint(other, tok, tmp_path / "b")
    save_checkpoint(tiny_model("llama", len(tok)), tok, tmp_path / "c")
    build = lambda p: load_causal_lm(p, dtype="float32", device="cpu")  # noqa: E731
    reloader = Reloader(build, "cpu", slots=1)
    for name in ("a", "b", "c", "a"):
        model = reloader(tmp_path / name)
    assert reloader.built == 4 and reloader.copied == 0
    assert _same_weights(model, build(tmp_path / "a"))


def test_copy_refuses_a_truncated_file_before_touching_the_model(tmp_path):
    from probekit.errors import ProbekitError

    tok = byte_bpe_tokenizer()
    save_checkpoint(tiny_model("qwen2", len(tok)), tok, tmp_path / "a")
    save_checkpoint(perturb(tiny_model("qwen2", len(tok)), 0.1, 1), tok, tmp_path / "b")
    file = tmp_path / "b" / "model.safetensors"
    file.write_bytes(file.read_bytes()[:-100])
    model = load_causal_lm(tmp_path / "a", dtype="float32", device="cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ProbekitError, match="truncated"):
        copy_weights(model, tmp_path / "b")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("overlap", ["true", "false"])
def test_the_series_table_is_the_same_with_and_without_reuse(tiny_series, overlap):
    tmp_path, run, _, held, unk = tiny_series
    tables = {}
    for reuse in ("true", "false"):
        out = tmp_path / f"probes-{reuse}"
        assert main(probe_args(run, held, unk, out, "--reuse-models", reuse, "--overlap-loads", overlap)) == 0
        tables[reuse] = pd.read_csv(out / "probes.csv")
    pd.testing.assert_frame_equal(tables["true"], tables["false"], check_exact=True)
