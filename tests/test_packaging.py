"""The package's metadata, and that the README's links reach files the sdist ships."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What setuptools puts in every sdist besides MANIFEST.in's lines.
SDIST_DEFAULTS = {"README.md", "pyproject.toml", "LICENSE"}


def test_license_is_an_spdx_expression_with_its_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    for name in project["license-files"]:
        text = (ROOT / name).read_text()
        assert text.startswith("MIT License") and "sseserver contributors" in text


def test_no_extra_names_a_dependency_nothing_imports() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    # the redis extra is what the Redis stream store (its only importer) imports
    importer = "".join(path.read_text() for path in
                       (ROOT / "sseserver" / "streams").glob("redis*.py"))
    for requirement in extras["redis"]:
        name = re.split(r"[<>=!~ ]", requirement)[0]
        assert re.search(rf"^(import|from) {name}\b", importer, re.M), name


def test_readme_links_point_to_files_in_the_sdist() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = {m.group(1) for m in re.finditer(r"\]\(([^)#\s]+)\)", readme)
               if "://" not in m.group(1)}
    assert targets, "the README links to files of the repository"
    shipped = _manifest_patterns()
    for target in sorted(targets):
        assert (ROOT / target).is_file(), f"README links to missing {target}"
        assert target in SDIST_DEFAULTS | shipped["include"] or any(
            target.startswith(folder + "/") for folder in shipped["graft"]), \
            f"README links to {target}, which the sdist does not ship"


def _manifest_patterns() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"include": set(), "graft": set()}
    for line in (ROOT / "MANIFEST.in").read_text().splitlines():
        command, *paths = line.split("#")[0].split() or [""]
        if command in found:
            found[command].update(paths)
    return found
