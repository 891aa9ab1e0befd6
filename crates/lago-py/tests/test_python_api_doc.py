"""docs/python-api.md says, member by member, what of the original's Python surface is here: every
row is checked against the installed package, and every public name of the package's modules of
the original's names has a row."""

import importlib
import inspect
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "python-api.md"

#: The package's modules of the original's names (and lago.cmd, the plugins' command line).
MODULES = ["lago.utils", "lago.ssh", "lago.workdir", "lago.sdk", "lago.sdk_utils", "lago.plugins", "lago.plugins.cli",
           "lago.plugins.vm", "lago.plugins.service", "lago.plugins.output", "lago.service", "lago.virt", "lago.vm",
           "lago.prefix", "lago.cmd"]

NAME = re.compile(r"^`([A-Za-z_][\w.]*)`$")


def rows() -> Tuple[List[Tuple[str, Optional[str], str]], List[str]]:
    """The original's rows (original, here or None, status) and lago's own names."""
    original, own = [], []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or not NAME.match(cells[0]):
            continue
        if len(cells) == 4:
            here = NAME.match(cells[1])
            original.append((NAME.match(cells[0]).group(1), here.group(1) if here else None, cells[2]))
        elif len(cells) == 2:
            own.append(NAME.match(cells[0]).group(1))
    return original, own


def resolve(dotted: str) -> Any:
    """The object at `dotted` (module, then attributes); AttributeError/ImportError if none."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def public_surface() -> List[str]:
    """Every public name of MODULES, and the public methods and properties of their classes."""
    names = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        assert hasattr(module, "__all__"), f"{module_name} has no __all__"
        for name in module.__all__:
            obj = getattr(module, name)
            names.append(f"{module_name}.{name}")
            if inspect.isclass(obj) and obj.__module__ == module_name:
                for member, value in vars(obj).items():
                    if member.startswith("_") and member not in ("_request_start", "_request_stop"):
                        continue
                    if inspect.isfunction(value) or isinstance(value, (property, classmethod, staticmethod)):
                        names.append(f"{module_name}.{name}.{member}")
    return names


def test_the_table_is_read() -> None:
    original, own = rows()
    assert len(original) > 150 and len(own) > 10
    assert {s for _, _, s in original} == {"same", "differs", "absent"}


@pytest.mark.parametrize("row", rows()[0], ids=lambda r: r[0])
def test_each_row_of_the_originals_surface_is_true(row) -> None:
    original, here, status = row
    if status == "absent":
        assert here is None, f"{original} is absent, yet names {here}"
        with pytest.raises((AttributeError, ImportError)):
            resolve(original)
    else:
        assert here is not None, f"{original} is {status}: where is it?"
        resolve(here)


def test_lagos_own_names_are_there() -> None:
    for name in rows()[1]:
        resolve(name)


def test_every_public_name_has_a_row() -> None:
    original, own = rows()
    documented = {here for _, here, _ in original if here} | set(own)
    missing = [n for n in public_surface() if n not in documented]
    assert not missing, "names without a row in docs/python-api.md: " + ", ".join(missing)
