"""probekit: what does fine-tuning do to the facts a language model already knew?

Attach probes to any series of Hugging Face checkpoints and measure how the representations and outputs of
held-out facts drift from the base model (RD, NS, MTD, Rank-ρ, NTR, JSD at the key entity's final token): from a
folder of checkpoints (``probe_series``), inside a transformers / TRL training run
(``probekit.integrations.hf.DriftCallback``) or between two models in memory (``drift``).
"""
from .capture import Capture, Prober
from .drift_probe import drift
from .entities import Fact, read_facts
from .errors import ProbekitError
from .models import load_model
from .plot import read_probes
from .series import ProbeConfig, probe_series

__all__ = ["Capture", "Fact", "ProbeConfig", "Prober", "ProbekitError", "drift", "load_model", "probe_series",
           "read_facts", "read_probes"]
__version__ = "0.1.0"
