"""Variants of the pytest plugin: several init files for ``lago_env``.

The ini option ``lago_init_file`` may name several files (separated by spaces or lines, quoted
as a shell would), and so may the marker (``@pytest.mark.lago_init_file("tiny.yaml",
"cloud-image.yaml")``, or a list). ``lago_env`` is then parametrized over them, at its own scope:
one environment per file, booted once and shared by the tests of that variant as the one of a
single file is, and torn down when its last test ran. The ids are the files' names without their
suffix (``test_x[tiny]``, ``test_x[cloud-image]``; the directory's name when two files have the
same name); with ``lago_vm`` each VM of each file (``test_x[tiny-vm01]``). With one file nothing
is parametrized.
"""

import os
import shlex
from pathlib import Path
from typing import Any, List, Sequence

import pytest

from ._lago import vm_names_of


def init_files(config: pytest.Config, node: Any) -> List[Path]:
    """The init files of ``lago_env`` for ``node``: the closest ``lago_init_file`` marker's
    (relative to the test's file), else the ini option's (relative to the rootdir)."""
    marker = node.get_closest_marker("lago_init_file") if node is not None else None
    if marker is not None:
        names = [str(n) for arg in marker.args for n in (arg if isinstance(arg, (list, tuple)) else [arg])]
        if not names:
            raise pytest.UsageError(f"{node.nodeid}: the lago_init_file marker names no init file")
        base = Path(str(node.fspath)).parent
    else:
        ini = config.getini("lago_init_file")
        try:
            names = shlex.split(ini)
        except ValueError as e:
            raise pytest.UsageError(f"lago_init_file: {ini!r} is not a list of paths: {e}") from None
        if not names:
            raise pytest.UsageError("lago_env needs an init file: a @pytest.mark.lago_init_file(path) marker or the ini option lago_init_file")
        base = Path(str(config.rootpath))
    files = [Path(n) for n in names]
    return [f if f.is_absolute() else base / f for f in files]


def ids(files: Sequence[Path]) -> List[str]:
    """The test ids of the variants: the files' names without suffix, else their directories'
    names (``envs/tiny/LagoInitFile``), else a usage error naming the files."""
    for candidate in ([f.stem for f in files], [f.parent.name for f in files]):
        if len(set(candidate)) == len(candidate) and all(candidate):
            return candidate
    raise pytest.UsageError(
        "lago_init_file: the init files " + ", ".join(str(f) for f in files)
        + " need names (or directories) that differ: the test ids of the variants are made of them"
    )


def parametrize(metafunc: pytest.Metafunc, files: Sequence[Path], scope: str) -> None:
    """Parametrizes ``lago_env`` (and ``lago_vm`` with it) over the variants."""
    names = ids(files)
    if "lago_vm" in metafunc.fixturenames:
        params, labels = [], []
        for f, name in zip(files, names):
            for vm in vm_names_of(os.fspath(f)):
                params.append((str(f), vm))
                labels.append(f"{name}-{vm}")
        metafunc.parametrize(("lago_env", "lago_vm"), params, indirect=True, ids=labels, scope=scope)  # type: ignore[arg-type]
    else:
        metafunc.parametrize("lago_env", [str(f) for f in files], indirect=True, ids=names, scope=scope)  # type: ignore[arg-type]
