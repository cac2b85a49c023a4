"""The docs as a reader meets them: every relative link and anchor resolves, the README stays short, the
version is one, and the project speaks of itself, not of how it was built."""

import re
from pathlib import Path

import pytest
import yaml

import recbole_unlearn
from recbole_unlearn import Config

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
# Markdown links [text](target), not images of remote pages.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Words of a lab notebook: sessions, leases, issue numbers.
NOTEBOOK = re.compile(r"session [0-9]+|this\ssession|the\slease|issue [0-9]+", re.IGNORECASE)
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".txt", ".toml", ".cfg", ".ini", ".sh", ".hyper", ""}


def anchors(page):
    """GitHub's heading anchors of a Markdown page."""
    slugs, seen = set(), {}
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


def relative_links(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if not re.match(r"[a-z]+:", target):
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    assert not broken, broken


def project_files():
    for folder in ("docs", "recbole_unlearn", "bench", "properties", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                yield path
    yield ROOT / "README.md"


def test_the_project_speaks_of_the_project():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in project_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if NOTEBOOK.search(line)
    ]
    assert not found, "say date, commit, machine and command instead, history goes to CHANGELOG.md:\n" + "\n".join(
        found
    )


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 150


def test_one_version_in_setup_changelog_and_package():
    setup_version = re.search(r'version="([^"]+)"', (ROOT / "setup.py").read_text()).group(1)
    changelog_version = re.search(r"^## \[(\d[^\]]*)\]", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE).group(1)
    assert setup_version == changelog_version == recbole_unlearn.__version__


@pytest.mark.parametrize(
    "config_file", sorted([*(ROOT / "docs" / "examples").glob("*.yaml"), *(ROOT / "bench").glob("*.yaml")]), ids=str
)
def test_every_example_configuration_loads_with_its_values(config_file):
    """A renamed or misspelled recbole-unlearn key in a documented file fails here, not in a user's run."""
    settings = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    sections = {key: value for key, value in settings.items() if isinstance(value, dict) and key[:1].isupper()}
    common = {key: value for key, value in settings.items() if key not in sections}
    for model, own in {settings.get("model", "BPR"): {}, **sections}.items():
        config = Config(model=model, dataset="ml-100k", config_file_list=[str(config_file)])
        expected = {**common, **own}
        assert {key: config[key] for key in expected} == expected
