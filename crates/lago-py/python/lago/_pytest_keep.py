"""``--lago-keep``: the pytest plugin keeps environments running past their tests (lago's own).

``--lago-keep=never|on-failure|always`` (ini ``lago_keep``, ``never`` by default):

``never``
    ``lago_env`` is destroyed after its tests, as always.
``on-failure``
    The environment of a failed test that used ``lago_env`` is not destroyed: it stays running
    (as the last test of its scope left it), the host's register of environments says that test
    keeps it (``lago envs``), and the failure report says how to reach it: its workdir on a line
    of its own (``lago workdir: W``), each VM's ``lago --workdir W --prefix-name P shell VM``, its
    plain ``ssh`` command line and its forwards. ``lago envs --destroy-older-than DURATION`` (or
    ``lago --workdir W --prefix-name P destroy``) ends it.
``always``
    Every ``lago_env`` is kept, failed or not; the run's summary says how to reach each.

The run's summary (section ``lago: kept environments``) lists every environment kept (under
pytest-xdist the failure reports say it, the workers' summaries are not shown). Each test that
used ``lago_env`` carries ``item.lago_workdir`` and ``item.lago_prefix_name``.
"""

import os
from typing import Any, List, Optional, Tuple

import pytest

from ._lago import LagoError, env_keeper, keep_env

#: The values of ``--lago-keep``.
MODES = ("never", "on-failure", "always")

_KEPT = pytest.StashKey[List[Tuple[str, List[str]]]]()


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lago")
    group.addoption(
        "--lago-keep",
        dest="lago_keep",
        default=None,
        metavar="never|on-failure|always",
        help="keep lago_env running after its tests: never (default), on-failure (of a test that used it) or always; the report says how to reach it",
    )
    parser.addini("lago_keep", "keep lago_env running after its tests: never, on-failure or always (--lago-keep overrides it)", default="never")


def mode(config: pytest.Config) -> str:
    """``--lago-keep``, else the ini option ``lago_keep``, checked."""
    value = config.getoption("lago_keep", None)
    origin = "--lago-keep"
    if value is None:
        value = config.getini("lago_keep") or "never"
        origin = "ini option lago_keep"
    if value not in MODES:
        raise pytest.UsageError(f"{origin}: {value!r} is not one of never, on-failure, always")
    return str(value)


def configure(config: pytest.Config) -> None:
    """Refuses a bad ``--lago-keep`` before any test runs."""
    mode(config)
    config.stash[_KEPT] = []


def note_item(item: pytest.Item, env: Any) -> None:
    """Sets ``item.lago_workdir`` and ``item.lago_prefix_name`` of a test that uses ``env``."""
    item.lago_workdir = os.fspath(env.workdir)  # type: ignore[attr-defined]
    item.lago_prefix_name = os.path.basename(os.fspath(env.prefix_path))  # type: ignore[attr-defined]


def _keep(config: pytest.Config, env: Any, who: str) -> List[str]:
    """Keeps ``env`` for ``who``: registered as kept, never destroyed by the plugin. Returns the
    lines that say how to reach it."""
    lines = keep_env(os.fspath(env.prefix_path), who, os.fspath(env.workdir))
    env._lago_kept = who
    config.stash.setdefault(_KEPT, []).append((who, lines))
    return lines


def on_failure(item: pytest.Item, report: pytest.TestReport, env: Any) -> None:
    """A test that used ``env`` failed: keeps it (``on-failure``, ``always``) and says in the
    report how to reach it."""
    keep = mode(item.config)
    if keep == "never":
        return
    if getattr(env, "_lago_kept", None) is not None:
        report.sections.append(("lago", f"environment kept already (by {env._lago_kept}):\nlago workdir: {os.fspath(env.workdir)}"))
        return
    try:
        lines = _keep(item.config, env, f"pytest {item.nodeid}")
    except LagoError as e:
        report.sections.append(("lago", f"keeping the environment failed (it is destroyed as usual): {e}"))
        return
    report.sections.append(("lago", f"environment kept (--lago-keep={keep}), reach it with:\n" + "\n".join(lines)))


def keeps(request: pytest.FixtureRequest, env: Any) -> bool:
    """At ``lago_env``'s teardown: whether the plugin must leave ``env`` running (a failed test
    kept it, or ``always``)."""
    if getattr(env, "_lago_kept", None) is not None:
        return True
    if mode(request.config) != "always":
        return False
    try:
        _keep(request.config, env, f"pytest {request.node.nodeid or request.config.rootpath.name} (--lago-keep=always)")
    except LagoError as e:
        request.node.warn(pytest.PytestWarning(f"lago: keeping the environment failed, destroying it: {e}"))
        return False
    return True


def kept_prefix(prefix: str) -> Optional[str]:
    """Who keeps the environment of ``prefix`` (so the run's end leaves it), if anyone."""
    try:
        return env_keeper(prefix)
    except LagoError:
        return None


def terminal_summary(terminalreporter: Any) -> None:
    """The run's summary of the environments kept and how to reach each."""
    kept = terminalreporter.config.stash.get(_KEPT, [])
    if not kept:
        return
    terminalreporter.section("lago: kept environments")
    for who, lines in kept:
        terminalreporter.write_line(f"{who}:")
        for line in lines:
            terminalreporter.write_line(f"  {line}")
    terminalreporter.write_line("lago envs lists them; lago --workdir W --prefix-name P destroy ends one, lago envs --destroy-older-than DURATION those older")
