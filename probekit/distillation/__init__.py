"""The study's fine-tuning loss, for any training loop: QA examples and their batches (``batches``), LM-head logits
only where a loss needs them (``heads``), the task, self-distillation and ℓ2 losses (``losses``), a frozen teacher's
top-k / random-k rows on disk (``teacher_cache``), what keeps the model near its teacher (``regularizers``) and all
of it as one module forward (``objective``). ``probekit.integrations.hf`` runs it inside a transformers Trainer."""
