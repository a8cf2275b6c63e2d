"""The README's "Bring your own training run" snippets run as written (embedded model, TRL, a few facts)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HELD = [("Which country is Milan located in?", "Milan", "Italy"),
        ("Which country is Lyon located in?", "Lyon", "France"),
        ("Which country is Porto located in?", "Porto", "Portugal")]
UNKNOWN = [("Which country is Bergadena located in?", "Bergadena", "Italy"),
           ("Which country is Lorvasse located in?", "Lorvasse", "France")]


def section_blocks(title: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the README section headed `title`."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


@pytest.mark.slow
def test_bring_your_own_run_snippets(tmp_path, embedded):
    for name, facts in (("held.jsonl", HELD), ("unknown.jsonl", UNKNOWN)):
        (tmp_path / name).write_text("".join(json.dumps({"question": q, "entity": e, "answers": [a]}) + "\n"
                                             for q, e, a in facts))
    blocks = section_blocks("Bring your own training run")
    python = "\n".join(code for lang, code in blocks if lang == "python")
    shell = [code.strip() for lang, code in blocks if lang == "bash"]
    assert python and shell
    run = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "runs" / "sft" / "probes" / "probes.csv").exists()
    for command in shell:  # the folder of checkpoints the callback's run saved
        args = command.split()
        assert args[0] == "probekit"
        done = subprocess.run([sys.executable, "-m", "probekit", *args[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "probes" / "probes.csv").exists()
