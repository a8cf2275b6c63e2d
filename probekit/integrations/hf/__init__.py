"""probekit inside a transformers ``Trainer`` or TRL ``SFTTrainer`` run: ``DriftCallback`` measures drift from θ0
during training (``drift_callback``); ``SelfDistillationTrainer`` / ``SelfDistillationMixin`` train with the study's
self-distillation (``self_distillation``)."""
from .drift_callback import DriftCallback
from .self_distillation import SelfDistillationMixin, SelfDistillationTrainer

__all__ = ["DriftCallback", "SelfDistillationMixin", "SelfDistillationTrainer"]
