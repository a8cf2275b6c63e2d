"""The one exception a user can cause, and the entry point that turns it into one line and exit status 2."""
from __future__ import annotations

import sys
from collections.abc import Callable


class ProbekitError(ValueError):
    """Bad input a user can fix: the message names the cause and the fix."""


def run_cli(prog: str, command: Callable[[], object]) -> int:
    """Run a command-line entry point: a ProbekitError becomes ``prog: error: message`` on stderr and status 2.

    Hugging Face's own loading bars are switched off here, where a command starts (not at import): ours say what
    is happening."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        command()
    except ProbekitError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
