"""The README: one screen for a newcomer, whose commands and links work (the details live in docs/)."""

from __future__ import annotations

import re
from pathlib import Path

from noisybench.config import tomllib

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_fits_one_screen_and_gives_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 160
    assert "pip install -e . && noisybench run benchmarks/quick.toml" in text
    assert "pip install -e '.[test]' && pytest" in text


def test_readme_links_into_pages_that_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if not link.startswith("http")]
    assert len(local) >= 10 and all(link.startswith("docs/") for link in local)
    assert [link for link in local if not (ROOT / link).is_file()] == []


def test_readme_commands_name_existing_grids_and_extras() -> None:
    text = README.read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"test", "docs"} <= set(extras) and all(e in extras for e in re.findall(r"\.\[(\w+)\]", text))
    assert all((ROOT / grid).is_file() for grid in re.findall(r"benchmarks/\w+\.toml", text))


def test_readme_sample_leaderboard_names_its_grid_and_date() -> None:
    text = README.read_text()
    section = text[text.index("## What the quick board prints"):text.index("## What is inside")]
    assert re.search(r"`benchmarks/quick\.toml`, runs of \d{4}-\d{2}-\d{2}", section)
    rows = [line for line in section.splitlines() if line.startswith("| ") and re.search(r"\| \**\d\.\d\d", line)]
    assert {row.split("|")[1].strip() for row in rows} == {"CE", "GCE", "ELR", "ALR", "DivideMix"}
    assert re.search(r"Friedman test rejects \(χ² = [\d.]+, p = 0\.0[0-4]\d?\)", section)
