"""The README and the documentation pages: the "Bring your own training run" snippets run as written (embedded
model, TRL, a few facts); the README's Quickstart blocks are copies of documented ones; no relative link is broken."""
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
BRING_YOUR_OWN = DOCS / "bring-your-own-run.md"
HELD = [("Which country is Milan located in?", "Milan", "Italy"),
        ("Which country is Lyon located in?", "Lyon", "France"),
        ("Which country is Porto located in?", "Porto", "Portugal")]
UNKNOWN = [("Which country is Bergadena located in?", "Bergadena", "Italy"),
           ("Which country is Lorvasse located in?", "Lorvasse", "France")]
FENCE = re.compile(r"^```.*?^```[ \t]*$", flags=re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def section_blocks(path: Path, title: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the section of the Markdown file `path` headed `title` (any level):
    from that heading to the next heading of the same or a higher level, outside fenced blocks."""
    lines = path.read_text(encoding="utf-8").split("\n")
    fenced, start, level, end = False, None, 0, len(lines)
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"(#+) (.*)$", line)
        if heading and start is None and heading[2].strip() == title:
            start, level = i + 1, len(heading[1])
        elif heading and start is not None and len(heading[1]) <= level:
            end = i
            break
    assert start is not None, f"no section {title!r} in {path}"
    return re.findall(r"```(\w+)\n(.*?)```", "\n".join(lines[start:end]), flags=re.S)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def relative_links(path: Path) -> list[str]:
    """Link and image targets outside fenced blocks and code spans, less URLs and same-page anchors."""
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", path.read_text(encoding="utf-8")))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def mounted() -> tuple[str, ...]:
    """What docs/hooks.py serves inside the site under its repository path (figures/, ...)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks.MOUNTED


def slug(heading: str) -> str:
    """A heading's anchor as GitHub and MkDocs's toc both write it for plain headings."""
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading.strip().lower()))


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def link_target_exists(page: Path, target: str, served: tuple[str, ...]) -> bool:
    path, _, anchor = target.partition("#")
    file = page.parent / path
    if not file.exists():
        if DOCS not in page.parents or DOCS.resolve() not in file.resolve().parents:
            return False
        in_site = file.resolve().relative_to(DOCS.resolve()).as_posix()  # a docs page's link into a served path
        if not any(in_site == m or in_site.startswith(m + "/") for m in served):
            return False
        file = ROOT / in_site
    return file.exists() and (not anchor or file.suffix != ".md" or anchor in anchors(file))


def test_relative_links_point_to_files():
    served = mounted()
    assert "figures" in served
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in markdown_files()
              for target in relative_links(page) if not link_target_exists(page, target, served)]
    assert not broken, "broken relative links:\n" + "\n".join(broken)
    assert "docs/probe.md" in relative_links(README) and "figures/fig5.png" in relative_links(DOCS / "results-quick.md")


def test_readme_quickstart_blocks_are_documented():
    """The README's quickstarts are copies of blocks in the docs (bring-your-own-run's run in the slow test below)."""
    documented = {code for page in sorted(DOCS.rglob("*.md"))
                  for code in re.findall(r"```\w+\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)}
    blocks = section_blocks(README, "Quickstart")
    assert {lang for lang, _ in blocks} == {"bash", "python"}
    assert [code for _, code in blocks if code not in documented] == []


def test_readme_set_up_commands():
    blocks = section_blocks(README, "Set up: two commands")
    assert [line.split("#")[0].strip() for line in blocks[0][1].splitlines()] == ["bash scripts/main.sh",
                                                                                  "bash scripts/test.sh"]


def test_section_blocks_stops_at_the_next_heading_of_its_level():
    langs = [lang for lang, _ in section_blocks(BRING_YOUR_OWN, "Bring your own training run")]
    assert langs == ["bash", "python", "python", "python"]


@pytest.mark.slow(seconds=45)
def test_bring_your_own_run_snippets(tmp_path, embedded):
    for name, facts in (("held.jsonl", HELD), ("unknown.jsonl", UNKNOWN)):
        (tmp_path / name).write_text("".join(json.dumps({"question": q, "entity": e, "answers": [a]}) + "\n"
                                             for q, e, a in facts))
    blocks = section_blocks(BRING_YOUR_OWN, "Bring your own training run")
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
