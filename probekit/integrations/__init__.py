"""Probes and the study's self-distillation inside other people's training loops: ``probekit.integrations.hf`` for
transformers / TRL trainers."""
