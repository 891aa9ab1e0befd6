"""lago's pytest plugin (entry point ``pytest11``; active once the ``lago`` package is installed).

Fixtures:

``lago_env``
    The environment of an init file, initialized in a temporary workdir, started, given to the
    tests and destroyed after them. The init file comes from the closest
    ``@pytest.mark.lago_init_file(path)`` marker (a path relative to the test's file), else from
    the ini option ``lago_init_file`` (relative to the rootdir). Its scope is the ini option
    ``lago_env_scope`` (``module`` by default). ``lago_init_options`` (lines of ``key=value``)
    are ``lago init``'s options (``template_repo_path=...``).

    Variants: the ini option may name several init files (separated by spaces or lines, quoted
    as in a shell), the marker too (``@pytest.mark.lago_init_file("tiny.yaml",
    "cloud-image.yaml")``, or a list). ``lago_env`` is then parametrized over them: one
    environment per file, booted once and shared by that variant's tests (at the scope above),
    destroyed after its last one; the test ids are the files' names without their suffix
    (``test_x[tiny]``, ``test_x[cloud-image]``; the names of their directories when the files'
    names are the same: ``envs/tiny/LagoInitFile``), with ``lago_vm`` each VM of each file
    (``test_x[tiny-vm01]``). With one file nothing is parametrized. Under pytest-xdist and with
    ``lago_env_reset = fork`` each variant is booted once for the run and forked as below.

``lago_vm``
    One VM of that environment: a test that takes ``lago_vm`` runs once per VM of the init file.

A clean environment per test: with the ini option ``lago_env_reset = revert`` (or the marker
``@pytest.mark.lago_env_reset("revert")`` on a test, class or module), a live snapshot of
``lago_env`` is taken before the first test that uses it, and before every later one the
environment goes back to it: ``revert`` when every VM runs, else (a test powered a VM off) the
environment is stopped and started from the snapshot (``start(from_snapshot=...)``). With
``lago_env_reset = fork`` (in the ini file, or the marker on the module), ``lago_env`` is a copy
of the booted environment made by ``lago fork``, and before every later test its VMs are made
again from the frozen state (``renew()``: the test's copies destroyed, new ones made on the same
networks and ports). The time each reset took is in the test's report (section ``lago``) and its
``user_properties``.

Parallel workers (``pytest -n N`` with pytest-xdist): the environment of an init file is booted
once for the whole run (by the first worker that needs it, the others waiting for it) and each
worker's ``lago_env`` is a fork of it of its own (``<worker>-<n>``, in the same workdir);
``lago_env_reset`` works on it as above. The booted environment itself is stopped once forked and
destroyed at the end of the run. Without xdist, ``lago_env_reset = fork`` does the same in the
one process.

When a test that uses ``lago_env`` fails, the VMs' ``artifacts`` are collected into
``<rootdir>/<lago_artifacts_dir>/<test id>/<vm>/`` (``lago-artifacts`` by default), each VM's
console log is copied beside them (``<vm>.console.log``), and the report says where. Its failure
text (the terminal's, and the JUnit ``<failure>``'s) ends with the last 20 console lines of the
VMs involved (the test's ``lago_vm``, else every VM of ``lago_env``), each under a header
``console of <vm> (last 20 lines)``. Its ``user_properties`` name the environment:
``lago_workdir``, ``lago_prefix``, ``lago_init_file`` (with ``lago_env_reset``, the reset's
time, when there was one). With ``--junitxml``, these are ``<property>`` elements of its
``<testcase>``, and its ``<system-out>`` ends with a line ``[[ATTACHMENT|/abs/path]]`` per file of
its artifacts and console logs, and per capture of its environment (``--lago-capture``): Jenkins'
JUnit attachments plugin and GitLab show those files with the test. A test that passed has none.
They come back from pytest-xdist workers too.
"""

import fcntl
import hashlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest

from . import _pytest_report, _pytest_variants, sdk
from ._lago import LagoError, vm_names_of


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("lago_init_file", "init file of the lago_env fixture (a lago_init_file marker overrides it); several (separated by spaces) are variants, lago_env parametrized over them", default="")
    parser.addini("lago_env_scope", "scope of lago_env: function, class, module, package or session", default="module")
    parser.addini("lago_init_options", "lago init options of lago_env, one key=value per line", type="linelist", default=[])
    parser.addini("lago_env_reset", "before each test using lago_env: revert (to a live snapshot taken once it is up), fork (a new copy of the environment frozen once it is up) or none", default="none")
    parser.addini("lago_artifacts_dir", "directory (under the rootdir) for the artifacts of failed tests", default="lago-artifacts")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lago_init_file(path, ...): the init file of lago_env (relative to the test's file); several are variants, lago_env parametrized over them")
    config.addinivalue_line("markers", "lago_env_reset(mode): 'revert' takes lago_env back to its clean snapshot before the test, 'fork' (on a module) gives each test a new copy of the environment frozen once it is up, 'none' does neither")
    # The attachments of failed tests in the JUnit XML (--junitxml).
    config.pluginmanager.register(_pytest_report.JunitAttachments(config), "lago-junit-attachments")


def _init_file(config: pytest.Config, node: Any) -> Path:
    """The one init file of ``lago_env`` for ``node`` (several are variants: ``lago_env`` is
    then parametrized over them, see ``_pytest_variants``)."""
    files = _pytest_variants.init_files(config, node)
    if len(files) > 1:
        raise pytest.UsageError(
            "lago_init_file names several init files (" + ", ".join(str(f) for f in files)
            + "): lago_env is parametrized over them only when it is an argument of the test (or of its fixtures)"
        )
    return files[0]


def _options(config: pytest.Config) -> Dict[str, str]:
    options: Dict[str, str] = {}
    for line in config.getini("lago_init_options"):
        key, sep, value = line.partition("=")
        if not sep:
            raise pytest.UsageError(f"lago_init_options: {line!r} is not key=value")
        options[key.strip()] = value.strip()
    return options


def _scope(fixture_name: str, config: pytest.Config) -> str:
    return config.getini("lago_env_scope") or "module"


def _worker(config: pytest.Config) -> Optional[str]:
    """The pytest-xdist worker this process is (``gw0``...), if it is one."""
    workerinput = getattr(config, "workerinput", None)
    return workerinput.get("workerid") if workerinput else None


def _origins_dir(tmp_path_factory: pytest.TempPathFactory, config: pytest.Config) -> Path:
    """Where the booted environments that lago_env forks live: in the run's temporary directory
    (under xdist, the one the workers' directories are in)."""
    base = tmp_path_factory.getbasetemp()
    if _worker(config) is not None:
        base = base.parent
    path = base / "lago-origins"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _forked_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, init_file: Path) -> sdk.SDK:
    """A fork of the booted environment of ``init_file``, of this process's own: the first to
    need it (in the run, across workers) initializes and starts it and forks it, the others wait
    for that and make copies of its frozen state."""
    options = _options(request.config)
    key = hashlib.sha1(f"{init_file.resolve()}\0{sorted(options.items())}".encode()).hexdigest()[:12]
    home = _origins_dir(tmp_path_factory, request.config) / key
    worker = _worker(request.config) or "main"
    with open(str(home) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        workdir = home / ".lago"
        taken = [p.name for p in workdir.iterdir()] if workdir.is_dir() else []
        n = 1
        while f"{worker}-{n}" in taken:
            n += 1
        name = f"{worker}-{n}"
        if not (home / "forked").exists():
            origin = sdk.init(init_file, workdir=workdir, **options)
            try:
                origin.start()
                copy = origin.fork(names=[name])[0]
            except BaseException:
                origin.destroy()
                raise
            # Its frozen state is what the forks are made of: it need not run.
            origin.stop()
            (home / "forked").write_text("")
            return copy
        origin = sdk.SDK(str(workdir), "default")
        return origin.fork(names=[name], from_frozen=True)[0]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The booted environments of the run go at its end (under xdist, once the workers ended)."""
    if _worker(session.config) is not None:
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    try:
        origins = factory.getbasetemp() / "lago-origins"
    except (OSError, ValueError):
        return
    if not origins.is_dir():
        return
    for home in sorted(p for p in origins.iterdir() if p.is_dir()):
        workdir = home / ".lago"
        if not workdir.is_dir():
            continue
        for prefix in sorted(p.name for p in workdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                sdk.SDK(str(workdir), prefix).destroy()
            except LagoError:
                pass


def _module_reset_mode(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker("lago_env_reset")
    return str(marker.args[0]) if marker is not None and marker.args else request.config.getini("lago_env_reset") or "none"


@pytest.fixture(scope=_scope)  # type: ignore[arg-type]
def lago_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sdk.SDK]:
    """The started environment of the init file (see the module's documentation): a fork of it
    of this process's own under pytest-xdist and with ``lago_env_reset = fork``."""
    param = getattr(request, "param", None)
    init_file = Path(param) if param is not None else _init_file(request.config, request.node)
    if _worker(request.config) is not None or _module_reset_mode(request) == "fork":
        env = _forked_env(request, tmp_path_factory, init_file)
        env._lago_fresh = True
        env._lago_init_file = init_file
        try:
            yield env
        finally:
            env.destroy()
        return
    workdir = tmp_path_factory.mktemp("lago") / ".lago"
    env = sdk.init(init_file, workdir=workdir, **_options(request.config))
    env._lago_init_file = init_file
    try:
        env.start()
        yield env
    finally:
        env.destroy()


@pytest.fixture
def lago_vm(request: pytest.FixtureRequest, lago_env: sdk.SDK) -> Any:
    """One VM of ``lago_env`` (the test runs once per VM)."""
    return lago_env.get_vms()[request.param]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lago_env" not in metafunc.fixturenames:
        return
    try:
        files = _pytest_variants.init_files(metafunc.config, metafunc.definition)
    except pytest.UsageError as e:
        if "lago_vm" in metafunc.fixturenames:
            raise pytest.fail.Exception(str(e), pytrace=False) from None
        return  # lago_env says it when it is set up
    if len(files) > 1:
        try:
            _pytest_variants.parametrize(metafunc, files, _scope("lago_env", metafunc.config))
        except pytest.UsageError as e:
            raise pytest.fail.Exception(str(e), pytrace=False) from None
        return
    if "lago_vm" not in metafunc.fixturenames:
        return
    names = vm_names_of(os.fspath(_init_file(metafunc.config, metafunc.definition)))
    metafunc.parametrize("lago_vm", names, indirect=True, ids=names)


#: The live snapshot per-test resets go back to.
CLEAN_SNAPSHOT = "lago-pytest-clean"


def _reset_mode(item: Any) -> str:
    marker = item.get_closest_marker("lago_env_reset")
    mode = str(marker.args[0]) if marker is not None and marker.args else item.config.getini("lago_env_reset") or "none"
    if mode not in ("revert", "fork", "none"):
        raise pytest.UsageError(f"lago_env_reset: {mode!r} is not 'revert', 'fork' or 'none'")
    return mode


@pytest.fixture(autouse=True)
def _lago_env_reset(request: pytest.FixtureRequest) -> None:
    """Takes ``lago_env`` back to its clean snapshot before the test (see the module)."""
    if "lago_env" not in request.fixturenames or _reset_mode(request.node) == "none":
        return
    env = request.getfixturevalue("lago_env")
    began = time.monotonic()
    if _reset_mode(request.node) == "fork":
        if not hasattr(env, "_lago_fresh"):
            raise pytest.UsageError("lago_env_reset('fork') needs lago_env forked: set it on the module or in the ini file")
        if env._lago_fresh:
            env._lago_fresh = False
            what = "a fresh fork"
        else:
            env.renew()
            what = "renewed from its frozen state"
    elif not getattr(env, "_lago_clean_snapshot", False):
        env._prefix.create_snapshots(CLEAN_SNAPSHOT)
        env._lago_clean_snapshot = True
        what = f"clean snapshot {CLEAN_SNAPSHOT} taken"
    elif all(vm.running() for vm in env.get_vms().values()):
        env._prefix.revert_snapshots(CLEAN_SNAPSHOT)
        what = f"reverted to {CLEAN_SNAPSHOT}"
    else:
        env.stop()
        env.start(from_snapshot=CLEAN_SNAPSHOT)
        what = f"started from {CLEAN_SNAPSHOT} (a VM was stopped)"
    line = f"{what} in {time.monotonic() - began:.2f} s"
    request.node.user_properties.append(("lago_env_reset", line))
    request.node.stash[_RESET] = line


_RESET = pytest.StashKey[str]()


def _artifacts_dir(item: pytest.Item) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")
    return Path(str(item.config.rootpath)) / item.config.getini("lago_artifacts_dir") / name


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "teardown":
        _pytest_report.teardown(item, report)
    reset = item.stash.get(_RESET, None)
    if reset is not None and report.when == "call":
        report.sections.append(("lago", f"environment reset before the test: {reset}"))
    if report.when != "call" or not report.failed:
        return
    env: Optional[sdk.SDK] = getattr(item, "funcargs", {}).get("lago_env")
    if env is None:
        return
    dest = _artifacts_dir(item)
    shutil.rmtree(dest, ignore_errors=True)  # a former run's
    try:
        env.collect_artifacts(dest, ignore_nopath=True)
    except LagoError as e:
        report.sections.append(("lago", f"collecting the VMs' artifacts failed: {e}"))
    else:
        report.sections.append(("lago", f"artifacts of the VMs: {dest}"))
    _pytest_report.failed(item, report, env, dest)
