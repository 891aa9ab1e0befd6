"""The ``lago`` and ``lagocli`` commands of the Python package: they run the lago program that
came with the package (``lago/bin/lago``; else ``LAGO_BIN``, else a ``lago`` on ``PATH`` that is
not this script), telling it which Python has the package (``LAGO_PYTHON``), where CLI plugins
(``lago.plugins.cli`` entry points) are found."""

import os
import shutil
import sys
from typing import List, Optional


def _program() -> Optional[str]:
    bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "lago")
    if os.access(bundled, os.X_OK):
        return bundled
    if os.environ.get("LAGO_BIN"):
        return os.environ["LAGO_BIN"]
    me = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, "lago")
        if os.access(candidate, os.X_OK) and os.path.realpath(candidate) != me and not _is_script(candidate):
            return candidate
    return shutil.which("lago-bin")


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    program = _program()
    if program is None:
        sys.stderr.write("lago: the lago program is not installed with this Python package "
                         "(build it with scripts/setup.sh, or set LAGO_BIN)\n")
        sys.exit(127)
    os.environ["LAGO_PYTHON"] = sys.executable
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "lago"
    os.environ.setdefault("LAGO_PROG", name if name in ("lago", "lagocli") else "lago")
    os.execv(program, [program] + list(argv))
