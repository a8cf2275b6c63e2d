"""Every layer in one pass: `--layers` tables equal one probe per layer, in a series, in memory and in a Trainer."""
import pandas as pd
import pytest
import torch

from probekit import drift
from probekit.cli import main
from probekit.drift_probe import at_layer
from probekit.entities import read_facts
from probekit.errors import ProbekitError
from probekit.families import probe_layers
from probekit.models import load_model
from probekit.series import ProbeConfig, probe_series, read_states

from .conftest import tiny_model


def value_keys(probe_dir):
    return read_states(probe_dir, "epoch-002").keys()


def _series(tiny_series, out, **config):
    tmp, run, base, held, unk = tiny_series
    return probe_series(run, held=read_facts(held), unknown=read_facts(unk), out=tmp / out,
                        config=ProbeConfig(k=5, **config), progress=False)


def test_all_layers_in_one_pass_equal_one_probe_per_layer(tiny_series):
    every = _series(tiny_series, "all", layers="all")
    assert sorted(every["layer"].unique()) == [1, 2, 3, 4]
    assert len(every) == 3 * 4 * 8  # checkpoints × layers × metrics (six drift, two accuracies)
    for layer in (1, 2, 3, 4):
        one = _series(tiny_series, f"layer-{layer}", layer=layer)
        got = every[every["layer"] == layer].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, one, check_exact=False, atol=1e-6, rtol=1e-6)
    # the cached states hold every layer: one layer's view is that layer's own probe's states
    tmp = tiny_series[0]
    stacked = read_states(tmp / "all", "epoch-002")
    assert stacked["layers"].tolist() == [1, 2, 3, 4] and stacked["held_states"].shape[0] == 4
    for key, value in read_states(tmp / "layer-3", "epoch-002").items():
        torch.testing.assert_close(read_states(tmp / "all", "epoch-002", layer=3)[key], value)
    assert read_states(tmp / "layer-3", "epoch-002", layer=3).keys() == value_keys(tmp / "layer-3")
    with pytest.raises(ProbekitError, match="it probed layer 3"):
        read_states(tmp / "layer-3", "epoch-002", layer=2)


def test_layers_from_the_command_line_and_their_errors(tiny_series, capsys):
    tmp, run, base, held, unk = tiny_series
    args = ["probe", str(run), "--held", str(held), "--unknown", str(unk), "--k", "5"]
    assert main([*args, "--out", str(tmp / "p"), "--layers", "3", "1"]) == 0
    table = pd.read_csv(tmp / "p" / "probes.csv")
    assert sorted(table["layer"].unique()) == [1, 3]
    assert main([*args, "--out", str(tmp / "q"), "--layer", "2", "--layers", "all"]) == 2
    assert "give --layer or --layers, not both" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp / "q"), "--layers", "2", "9"]) == 2
    assert "layer 9 is out of range" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp / "q"), "--layers", "middle"]) == 2
    assert "--layers takes layer numbers or 'all'" in capsys.readouterr().err
    assert main(["plot", str(tmp / "p"), "--metric", "RD", "--heatmap", "--out", str(tmp / "fig" / "rd")]) == 0
    assert (tmp / "fig" / "rd.png").stat().st_size > 0


def test_probe_layers_resolves_numbers_all_and_the_default():
    config = tiny_model("llama").config
    assert probe_layers(config) == [2]
    assert probe_layers(config, 3) == [3]
    assert probe_layers(config, layers="all") == probe_layers(config, layers=["all"]) == [1, 2, 3, 4]
    assert probe_layers(config, layers=["4", "2", "4"]) == [2, 4]
    with pytest.raises(ProbekitError, match="not both"):
        probe_layers(config, 2, [3])


def test_drift_in_memory_takes_layers(tiny_series):
    tmp, run, base, held, unk = tiny_series
    base_model, tok = load_model(base)
    model, _ = load_model(run / "checkpoints" / "epoch-002")
    every = drift(base_model, model, tok, held, unk, layers="all", k=5)
    for layer in (1, 4):
        one = drift(base_model, model, tok, held, unk, layer=layer, k=5)
        got = every[every["layer"] == layer].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, one, check_exact=False, atol=1e-6, rtol=1e-6)


def test_at_layer_refuses_a_layer_not_captured():
    states = {"layers": torch.tensor([2, 4]), "held_states": torch.zeros(2, 3, 5), "held_topk": torch.zeros(3, 1)}
    assert at_layer(states, 4)["held_states"].shape == (3, 5)
    assert at_layer(states, 4)["held_topk"].shape == (3, 1)
    with pytest.raises(ProbekitError, match="layer 3 was not captured"):
        at_layer(states, 3)



def test_drift_callback_logs_every_layer(tmp_path):
    import copy

    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from probekit.integrations.hf import DriftCallback

    from .conftest import byte_bpe_tokenizer
    from .support.hf import ARGS, qa_dataset
    from .support.series import HELD, UNKNOWN, write_facts

    tok = copy.deepcopy(byte_bpe_tokenizer())
    tok.padding_side = "right"
    held = read_facts(write_facts(tmp_path / "held.jsonl", HELD))
    unknown = read_facts(write_facts(tmp_path / "unk.jsonl", UNKNOWN))
    args = TrainingArguments(output_dir=str(tmp_path / "run"), num_train_epochs=1, save_strategy="no", **ARGS)
    trainer = Trainer(model=tiny_model("llama", len(tok)), args=args, train_dataset=qa_dataset(tok, unknown),
                      data_collator=DataCollatorForSeq2Seq(tok, padding=True))
    callback = DriftCallback(held, unknown, tokenizer=tok, layers=[1, 3], k=5).attach(trainer)
    trainer.train()
    assert sorted(callback.table["layer"].unique()) == [1, 3]
    logged = [h for h in trainer.state.log_history if "drift/layer3/RD" in h]
    assert len(logged) == 2 and "drift/layer1/NTR" in logged[-1] and logged[-1]["drift/layer3/RD"] > 0
    assert 0 <= logged[-1]["drift/layer3/accuracy_held"] <= 1  # behaviour beside drift, in the loop too


def test_one_ahead_loads_the_next_item_while_the_current_one_is_used():
    import threading

    from probekit.prefetch import OneAhead

    started, alive, peak = [], set(), [0]
    lock = threading.Lock()

    def load(item):
        with lock:
            started.append(item)
            alive.add(item)
            peak[0] = max(peak[0], len(alive))
        if item == "bad":
            raise ProbekitError("cannot load bad")
        return item

    items = ["a", "b", "bad", "c"]
    with OneAhead(items, load) as loads:
        assert loads.take(0) == "a"
        alive.discard("a")
        loads._next[1].result()  # "b" is read while "a" is in use
        assert started == ["a", "b"]
        assert loads.take(1) == "b"
        alive.discard("b")
        with pytest.raises(ProbekitError, match="cannot load bad"):
            loads.take(2)
        alive.discard("bad")
        assert loads.take(3) == "c"
    assert peak[0] <= 2 and started == items  # each loaded once, never two ahead
    with OneAhead(items, load, overlap=False) as loads:
        assert loads.take(3) == "c" and loads._next is None
