#!/usr/bin/env python3
"""Checks the links of the built documentation site, without the network: every internal link
(`href` and `src` of the site's pages) names a file of the site, and every `#anchor` an element of
the page it points to. Links to other sites are counted, not followed. The Rust SDK's pages
(`sdk/`, made by rustdoc) are not crawled, but links into them are checked like any other.

Usage: python3 scripts/docs/check_links.py target/book
Exits 1, listing each broken link with the page it is on, when one does not resolve.
"""

import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple
from urllib.parse import unquote, urlsplit

#: Directories of the site made by other tools, whose own links are theirs.
NOT_CRAWLED = ("sdk",)


class Page(HTMLParser):
    """The ids and the links of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: Set[str] = set()
        self.links: List[Tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        values = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if values.get(key):
                self.ids.add(values[key])
        for key in ("href", "src"):
            if values.get(key) is not None and tag in ("a", "link", "script", "img", "iframe", "source"):
                self.links.append((tag, values[key]))


def parse(path: Path, cache: Dict[Path, Page]) -> Page:
    if path not in cache:
        page = Page()
        page.feed(path.read_text(errors="replace"))
        cache[path] = page
    return cache[path]


def check(root: Path) -> Tuple[List[str], int, int]:
    """The broken links of the site at `root`, the number of internal links checked, and the
    number of links to other sites."""
    root = root.resolve()
    cache: Dict[Path, Page] = {}
    broken: List[str] = []
    internal = external = 0
    pages = sorted(p for p in root.rglob("*.html") if p.relative_to(root).parts[0] not in NOT_CRAWLED)
    for page_path in pages:
        page = parse(page_path, cache)
        where = page_path.relative_to(root)
        for tag, link in page.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                external += parts.scheme in ("http", "https")
                continue
            internal += 1
            if parts.path.startswith("/"):
                target = root / unquote(parts.path).lstrip("/")
            elif parts.path:
                target = (page_path.parent / unquote(parts.path)).resolve()
            else:
                target = page_path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{where}: <{tag}> {link}: no such file ({target.relative_to(root) if root in target.parents else target})")
                continue
            if parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in parse(target, cache).ids:
                    broken.append(f"{where}: <{tag}> {link}: no element #{parts.fragment} in {target.relative_to(root)}")
    return broken, internal, external


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[0])
    if not (root / "index.html").is_file():
        print(f"{root} holds no site (no index.html): build it with `bash scripts/docs.sh`", file=sys.stderr)
        return 1
    broken, internal, external = check(root)
    for line in broken:
        print(f"broken link: {line}", file=sys.stderr)
    print(f"links: {internal} internal links checked, {len(broken)} broken; {external} links to other sites not followed",
          file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
