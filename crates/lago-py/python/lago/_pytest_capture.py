"""The pytest plugin's captures (``--lago-capture=on-failure``, ini ``lago_capture``): the
environment of a failed test captured at the instant of the failure report, before the
environment is destroyed, into ``<rootdir>/<lago_artifacts_dir>/<test id>.lago-capture``
(``lago capture``: every VM paused together, their disks, memory and device states, the records,
the init file, the logs and the test's collected artifacts in one artefact that ``lago replay``
brings back running). The failure report names it on a line of its own, ``lago artefact:
PATH``, and ``item.lago_capture_path`` holds it (for the JUnit attachments)."""

import os
import re
from pathlib import Path
from typing import Any, Optional

import pytest

from ._lago import LagoError

#: What ``--lago-capture`` / ``lago_capture`` take.
MODES = ("never", "on-failure")


def addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lago-capture",
        dest="lago_capture",
        default=None,
        choices=MODES,
        help="capture the environment of a failed test that used lago_env (lago capture) before it is destroyed: never (default) or on-failure",
    )
    parser.addini("lago_capture", "capture the environment of a failed test before it is destroyed: never or on-failure", default="never")


def configure(config: pytest.Config) -> None:
    """Checks the mode once, before any test runs."""
    mode(config)


def mode(config: pytest.Config) -> str:
    """``--lago-capture``, else the ini option ``lago_capture``."""
    value = config.getoption("lago_capture") or config.getini("lago_capture") or "never"
    if value not in MODES:
        raise pytest.UsageError(f"lago_capture: {value!r} is not 'never' or 'on-failure'")
    return str(value)


def name_of(nodeid: str) -> str:
    """The capture's name for a test: its id as letters, digits, ``-``, ``_`` and ``.``, at
    most 63 of them, starting with a letter or digit."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_.-")
    name = name[-63:].lstrip("_.-")
    return name or "test"


def on_failure(item: Any, env: Any, report: Any, artifacts_root: Path, artifacts: Optional[Path]) -> None:
    """Captures ``env`` for the failed test ``item`` when asked (see the module), naming the
    artefact in ``report``."""
    if mode(item.config) != "on-failure":
        return
    name = name_of(item.nodeid)
    artifacts_root.mkdir(parents=True, exist_ok=True)
    path = artifacts_root / f"{name}.lago-capture"
    # An artefact of an earlier run of the same test.
    if path.exists():
        path.unlink()
    # The init file lago_env was made from (a variant's, when there are several).
    init_file: Optional[Path] = getattr(env, "_lago_init_file", None)
    if init_file is None:
        from .pytest_plugin import _init_file

        try:
            init_file = _init_file(item.config, item)
        except pytest.UsageError:
            init_file = None
    try:
        captured = env.capture(
            name,
            output=os.fspath(artifacts_root),
            init_file=os.fspath(init_file) if init_file is not None and Path(init_file).is_file() else None,
            artifacts=os.fspath(artifacts) if artifacts is not None and artifacts.is_dir() else None,
        )
    except LagoError as e:
        report.sections.append(("lago", f"capturing the environment failed: {e}"))
        return
    item.lago_capture_path = captured
    report.sections.append(("lago", f"lago artefact: {captured}\n(lago replay {captured} brings it back running)"))
