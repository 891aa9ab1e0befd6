#!/usr/bin/env python3
"""The Python API page of the documentation site (`docs/reference/python.md`), generated from the
package's sources: each module's docstring, its public names (`__all__`) with their signatures and
docstrings, and the native module's stubs (`_lago.pyi`). Names of the original Lago's surface are
marked with what `docs/python-api.md` says of them (same, differs); the others are lago's own.

The sources are read with `ast`, not imported, so the page needs neither the built package nor
its native module. `crates/lago-py/tests/test_docs_page.py` fails when the committed page differs
from what this generates.

Usage: python3 scripts/docs/python_api.py [--check] [OUT]   (OUT: docs/reference/python.md)
"""

import ast
import copy
import re
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "crates" / "lago-py" / "python" / "lago"
SURFACE = REPO / "docs" / "python-api.md"
PAGE = REPO / "docs" / "reference" / "python.md"
REGENERATE = "python3 scripts/docs/python_api.py"

#: The modules documented, in the page's order (the SDK first, the plugins' modules last).
MODULES = ["lago", "lago.sdk", "lago.plugins.vm", "lago.virt", "lago.prefix", "lago.workdir", "lago.utils", "lago.ssh",
           "lago.sdk_utils", "lago.vm", "lago.service", "lago.plugins", "lago.plugins.cli", "lago.plugins.service",
           "lago.plugins.output", "lago.cmd", "lago.pytest_plugin"]

#: Private members documented all the same: the hooks service plugins implement.
HOOKS = {"_request_start", "_request_stop"}


def source_of(module: str) -> Path:
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE / "__init__.py"
    path = PACKAGE.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def surface() -> Dict[str, Tuple[str, str]]:
    """What docs/python-api.md says of each name here: {name: (the original's name, status)}."""
    found = {}
    name = re.compile(r"^`([A-Za-z_][\w.]*)`$")
    for line in SURFACE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and name.match(cells[0]) and name.match(cells[1]):
            found[name.match(cells[1]).group(1)] = (name.match(cells[0]).group(1), cells[2])
    return found


def markdown(doc: Optional[str]) -> str:
    """A docstring as Markdown: reStructuredText's roles and literals as code, `::` blocks fenced."""
    if not doc:
        return ""
    text = textwrap.dedent(doc).strip("\n")
    lines = text.splitlines()
    if lines:
        lines = [lines[0].strip()] + textwrap.dedent("\n".join(lines[1:])).splitlines()
    out: List[str] = []
    block = False
    for line in lines:
        if block:
            if line.strip() and not line.startswith((" ", "\t")):
                close(out)
                block = False
            else:
                if line.strip() or out[-1] != "```python":
                    out.append(line[4:] if line.startswith("    ") else line.strip())
                continue
        if line.rstrip().endswith("::"):
            out.append(inline(line.rstrip()[:-1]))
            out.append("")
            out.append("```python")
            block = True
            continue
        out.append(inline(line))
    if block:
        close(out)
    return "\n".join(out).strip() + "\n"


def close(out: List[str]) -> None:
    """Ends a code block: no blank line before the fence, one after it."""
    while out and not out[-1].strip():
        out.pop()
    out.append("```")
    out.append("")


def inline(line: str) -> str:
    line = re.sub(r":(?:class|func|meth|mod|attr|exc|data):`~?([^`]+)`", r"`\1`", line)
    return line.replace("``", "`")


def signature(node: ast.AST, drop_self: bool) -> str:
    args = node.args
    if drop_self and args.args and args.args[0].arg in ("self", "cls"):
        # `self` has no default: the defaults stay with the arguments they belong to.
        args = copy.copy(args)
        args.args = args.args[1:]
    text = ast.unparse(args)
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"({text}){returns}"


def is_property(node: ast.AST) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


class Page:
    def __init__(self) -> None:
        self.lines: List[str] = []
        self.surface = surface()
        #: Every name the page documents.
        self.documented: set = set()

    def add(self, text: str = "") -> None:
        self.lines.append(text)

    def mark(self, name: str) -> str:
        self.documented.add(name)
        if name in self.surface:
            original, status = self.surface[name]
            said = f"the original's `{original}`" if original != name else "the original's"
            return f"*{said}: {status}*"
        return "*lago's own*"

    def entry(self, heading: str, qual: str, node: ast.AST) -> None:
        """A documented name: its heading, whose it is, and its docstring."""
        self.add(heading)
        self.add()
        self.add(self.mark(qual))
        self.add()
        doc = markdown(ast.get_docstring(node))
        if doc:
            self.add(doc)

    def member(self, qual: str, node: ast.AST, level: int) -> None:
        head = "#" * level
        if is_property(node):
            self.entry(f"{head} `{qual}` (property)", qual, node)
        else:
            self.entry(f"{head} `{qual}{signature(node, True)}`", qual, node)

    def klass(self, qual: str, node: ast.ClassDef, native: Dict[str, ast.ClassDef]) -> None:
        bases = ", ".join(ast.unparse(b) for b in node.bases if not (isinstance(b, ast.Name) and b.id == "object"))
        self.entry(f"### class `{qual}`" + (f"({bases})" if bases else ""), qual, node)
        own = {item.name for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for base in [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in native]:
            rows = []
            for item in native[base].body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_") and item.name not in own:
                    shown = item.name if is_property(item) else f"{item.name}{signature(item, True)}"
                    rows.append(f"- `{shown}`: {self.mark(f'{qual}.{item.name}')}")
            if rows:
                self.add(f"From the native `lago._lago.{base}`:")
                self.add()
                self.add("\n".join(rows))
                self.add()
        for item in node.body:
            if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if item.name.startswith("_") and item.name not in HOOKS:
                continue
            self.member(f"{qual}.{item.name}", item, 4)

    def module(self, module: str, native: Dict[str, ast.ClassDef]) -> None:
        tree = ast.parse(source_of(module).read_text())
        self.add(f"## `{module}`")
        self.add()
        doc = markdown(ast.get_docstring(tree))
        if doc:
            self.add(doc)
        names = exported(tree)
        defined = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
        imported = imports(tree, module)
        constants = assignments(tree)
        for name in names:
            qual = f"{module}.{name}"
            node = defined.get(name)
            if isinstance(node, ast.ClassDef):
                self.klass(qual, node, native)
            elif node is not None:
                self.entry(f"### `{qual}{signature(node, False)}`", qual, node)
            elif name in imported:
                self.add(f"### `{qual}`")
                self.add()
                self.documented.add(qual)
                mark = self.mark(qual) if qual in self.surface else self.mark(imported[name])
                self.add(f"{mark}: `{imported[name]}`, here too.")
                self.add()
            elif name in constants:
                self.add(f"### `{qual}`")
                self.add()
                self.add(f"{self.mark(qual)}: `{constants[name]}`")
                self.add()
            else:
                raise SystemExit(f"{module}: `{name}` is in __all__ but not found in its source")

    def native(self, stub: ast.Module) -> None:
        self.add("## `lago._lago` (native)")
        self.add()
        self.add("The Rust library behind the modules above, as its stubs (`_lago.pyi`) give it. "
                 "Its classes are the environment (`Env`, which `lago.sdk.SDK` is), a VM (`VM`, which "
                 "`lago.plugins.vm.VMPlugin` wraps), a network and the prefix's paths.")
        self.add()
        doc = markdown(ast.get_docstring(stub))
        if doc:
            self.add(doc)
        for node in stub.body:
            qual = f"lago._lago.{node.name}" if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ""
            if isinstance(node, ast.FunctionDef):
                self.add(f"### `{qual}{signature(node, False)}`")
                self.add()
                self.add(self.mark(qual))
                self.add()
            elif isinstance(node, ast.ClassDef):
                bases = ", ".join(ast.unparse(b) for b in node.bases)
                self.add(f"### class `{qual}`" + (f"({bases})" if bases else ""))
                self.add()
                self.add(self.mark(qual))
                self.add()
                members = []
                for item in node.body:
                    if not isinstance(item, ast.FunctionDef) or (item.name.startswith("_") and item.name != "__new__"):
                        continue
                    if item.name == "__new__":
                        shown = f"{node.name}{signature(item, True)}"
                    elif is_property(item):
                        shown = f"{item.name}` (property) `-> {ast.unparse(item.returns)}"
                    else:
                        shown = f"{item.name}{signature(item, True)}"
                    members.append(f"- `{shown}`: {self.mark(f'{qual}.{item.name}')}")
                if members:
                    self.add("\n".join(members))
                    self.add()


def exported(tree: ast.Module) -> List[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def imports(tree: ast.Module, module: str) -> Dict[str, str]:
    """Names a module imports: {name: where it comes from}."""
    found = {}
    package = module if source_of(module).name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            origin = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            for alias in node.names:
                found[alias.asname or alias.name] = f"{origin}.{alias.name}"
    return found


def assignments(tree: ast.Module) -> Dict[str, str]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = ast.unparse(node.value)
    return found


def generate() -> str:
    return build().text


class Built:
    def __init__(self, text: str, documented: set) -> None:
        self.text = text
        self.documented = documented


def build() -> Built:
    """The page, and the names it documents."""
    stub = ast.parse((PACKAGE / "_lago.pyi").read_text())
    native = {n.name: n for n in stub.body if isinstance(n, ast.ClassDef)}
    page = Page()
    page.add("# Python API")
    page.add()
    page.add("<!-- Generated by `scripts/docs/python_api.py` from the package's sources (`crates/lago-py/python/lago`): "
             f"do not edit; regenerate with `{REGENERATE}`. -->")
    page.add()
    page.add("The package `lago` (`pip install` of the wheel `scripts/setup.sh` builds; `from lago import sdk`), "
             "module by module: each public name with its signature and docstring. A name of the original Lago's "
             "surface says what [the member-by-member comparison](../python-api.md) says of it (*same*: what the "
             "original did, with the same arguments and results; *differs*: there, with the difference said "
             "there); the others are *lago's own*.")
    page.add()
    for module in MODULES:
        page.module(module, native)
    page.native(stub)
    text = "\n".join(page.lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return Built(text.strip() + "\n", page.documented)


def main(argv: List[str]) -> int:
    check = "--check" in argv
    rest = [a for a in argv if a != "--check"]
    out = Path(rest[0]) if rest else PAGE
    text = generate()
    if check:
        if not out.is_file() or out.read_text() != text:
            print(f"{out} is out of date with the package's sources: regenerate it with `{REGENERATE}` "
                  "and commit it", file=sys.stderr)
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
