"""Training runs for the study (``python -m training``). ``read_metrics(RUN)`` reads a run's per-epoch metrics as a
DataFrame; it is imported on first use, so ``import training`` stays cheap."""


def __getattr__(name: str):
    if name == "read_metrics":
        from .run_dir import read_metrics

        return read_metrics
    raise AttributeError(f"module 'training' has no attribute {name!r}")


__all__ = ["read_metrics"]
