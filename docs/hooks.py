"""MkDocs hook: serve the repository's figures and a few of its pages inside the site, without copying them into docs/.

Each path in MOUNTED (a folder or a file, relative to the repository root) is added to the site's files under the
same path, so a docs page links to it as it would from the root (`figures/fig5.png`, `bench/RESULTS.md`), the
README's links read the same, and `mkdocs build --strict` checks those links like any other. Markdown files among
them become pages (a table such as `figures/claims.md` is rendered); everything else is copied as it is.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOUNTED = ("figures", "bench/RESULTS.md", "results/README.md")


def mounted_files(root: Path = ROOT) -> list[str]:
    """Every file under MOUNTED, as a path relative to the repository root (POSIX separators), sorted."""
    found = []
    for entry in MOUNTED:
        path = root / entry
        found += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sorted(p.relative_to(root).as_posix() for p in found)


def on_files(files, config):
    from mkdocs.structure.files import File, InclusionLevel

    in_nav = {entry for entry in MOUNTED if entry.endswith(".md")}  # mkdocs.yml's nav names these pages
    for rel in mounted_files():
        if files.get_file_from_path(rel) is None:
            inclusion = InclusionLevel.UNDEFINED if rel in in_nav else InclusionLevel.NOT_IN_NAV
            files.append(File(rel, src_dir=str(ROOT), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"], inclusion=inclusion))
    return files
