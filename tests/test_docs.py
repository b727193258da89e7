"""The user documentation as a reader meets it: every relative link and image of README.md and docs/**/*.md
resolves to a file in the repository, the README stays short, and no internal names (numbered seed documents,
issue numbers) are left in what users read or in what the program prints."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# [text](target) and ![alt](target), with an optional "title"; <img src="..."> and <a href="...">
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def relative_links(page: Path) -> list[str]:
    """Targets of the page's links and images outside code, except web addresses and in-page anchors."""
    text = CODE.sub("", page.read_text(encoding="utf-8"))
    targets = MD_LINK.findall(text) + HTML_LINK.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE) and not t.startswith("#")]


def test_the_link_pattern_finds_links_and_images_but_not_code_or_web_addresses(tmp_path):
    page = tmp_path / "p.md"
    page.write_text('See [a](a.md#x), ![fig](img/f.png "t") and <img src="g.png">; [web](https://x.org), '
                    "[here](#top), `[not](code.md)`\n```\n[nor](block.md)\n```\n")
    assert relative_links(page) == ["a.md#x", "img/f.png", "g.png"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page):
    missing = []
    for target in relative_links(page):
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (page.parent / path).resolve()
        if not resolved.exists() or ROOT not in (resolved, *resolved.parents):
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_the_docs_pages_exist_and_the_readme_stays_short():
    for name in ("studies/static-hypernetworks.md", "studies/invariance.md", "studies/transformations.md",
                 "studies/compensation.md", "configuration.md", "errors.md", "performance.md", "development.md",
                 "references.md"):
        assert (ROOT / "docs" / name).is_file(), name
    assert (ROOT / "README.md").stat().st_size < 10 * 1024


def test_no_internal_names_in_what_users_read():
    pattern = re.compile(r"seed 00[0-9]|issue [0-9]|published\.md", re.IGNORECASE)
    files = [*PAGES, ROOT / "Makefile", *(ROOT / "hyperbench").rglob("*.py"), *(ROOT / "conf").rglob("*.yaml")]
    hits = [f"{f.relative_to(ROOT)}:{n}: {line.strip()}" for f in files
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)


def test_the_tests_named_in_the_bad_input_table_exist():
    """docs/errors.md names the test behind each message as file::test (abridged with ... where long)."""
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    named = re.findall(r"\b(test_\w+)::(test_\w*)", text)
    assert len(named) > 20
    for module, test in named:
        source = (ROOT / "tests" / f"{module}.py").read_text(encoding="utf-8")
        assert re.search(rf"def {re.escape(test.rstrip('_'))}\w*\(", source), f"{module}::{test}"
    for module in set(re.findall(r"\b(test_\w+)\b", text)):
        assert (ROOT / "tests" / f"{module}.py").exists() or any(m == module for _, m in named), module
