"""The documentation site's Python API page (`docs/reference/python.md`) is generated from the
package's sources by `scripts/docs/python_api.py`: this fails when the committed page is out of
date with them (a name added to `__all__`, a docstring or a signature changed)."""

import importlib.util

from conftest import REPO_ROOT


def generator():
    spec = importlib.util.spec_from_file_location("python_api", REPO_ROOT / "scripts" / "docs" / "python_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_python_api_page_is_up_to_date() -> None:
    gen = generator()
    page = REPO_ROOT / "docs" / "reference" / "python.md"
    assert page.read_text() == gen.generate(), (
        f"{page} is out of date with the package's sources: regenerate it with `{gen.REGENERATE}` and commit it")


def test_every_public_name_is_on_the_page_and_the_originals_are_marked() -> None:
    gen = generator()
    built = gen.build()
    for module in gen.MODULES:
        tree = gen.ast.parse(gen.source_of(module).read_text())
        for name in gen.exported(tree):
            assert f"{module}.{name}" in built.documented, f"{module}.{name}"
    # Every member of the original's surface that is here (docs/python-api.md) is on the page,
    # marked with what that page says of it.
    missing = [here for here in gen.surface() if here not in built.documented]
    assert not missing, "members of the original's surface missing from the page: " + ", ".join(missing)
    for mark in ("*the original's: same*", "*the original's: differs*", "*lago's own*"):
        assert mark in built.text, mark


def test_the_link_checker_finds_broken_links_and_anchors(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("check_links", REPO_ROOT / "scripts" / "docs" / "check_links.py")
    links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(links)
    (tmp_path / "reference").mkdir()
    (tmp_path / "sdk").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="reference/cli.html#lago-graph">ok</a><a href="reference/cli.html#nope">bad anchor</a>'
        '<a href="missing.html">bad file</a><a href="https://example.com/">away</a><img src="pictures/demo.svg">'
        '<a href="#top" id="top">here</a><a href="sdk/lago/index.html">sdk</a>')
    (tmp_path / "reference" / "cli.html").write_text('<h2 id="lago-graph">lago graph</h2><a href="../index.html">up</a>')
    (tmp_path / "sdk" / "broken.html").write_text('<a href="nowhere.html">not crawled</a>')
    broken, internal, external = links.check(tmp_path)
    assert sorted(b.split(": ", 1)[1] for b in broken) == [
        "<a> missing.html: no such file (missing.html)",
        "<a> reference/cli.html#nope: no element #nope in reference/cli.html",
        "<a> sdk/lago/index.html: no such file (sdk/lago/index.html)",
        "<img> pictures/demo.svg: no such file (pictures/demo.svg)",
    ]
    assert (internal, external) == (7, 1)
