"""Probes inside other people's training loops: ``probekit.integrations.hf`` for transformers / TRL trainers."""
