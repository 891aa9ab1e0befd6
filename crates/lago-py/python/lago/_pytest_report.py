"""The pytest plugin's results for CI: what a failed test that used ``lago_env`` leaves behind,
in the terminal and in the JUnit XML of ``--junitxml``.

- Its report's failure text (the terminal's and the JUnit ``<failure>``'s) ends with the last
  console lines of the VMs involved (the test's ``lago_vm``, else every VM of ``lago_env``), each
  under a header naming the VM.
- Every VM's console log is copied beside the collected artifacts
  (``<lago_artifacts_dir>/<test id>/<vm>.console.log``), where it outlives the environment.
- The test's ``user_properties`` (``<property>`` in the JUnit XML) name its environment:
  ``lago_workdir``, ``lago_prefix``, ``lago_init_file`` (beside ``lago_env_reset``, the time the
  reset before the test took, when there is one).
- Its ``<system-out>`` in the JUnit XML carries one ``[[ATTACHMENT|/abs/path]]`` line per file
  of those artifacts and console logs, and the environment's capture when one was made
  (``item.lago_capture_path``): Jenkins' JUnit attachments plugin and GitLab show them with the
  test. The lines travel on the test's teardown report (``lago_attachments``), so they also come
  back from pytest-xdist workers.
"""

import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from ._lago import LagoError

#: How many console lines of each VM end a failure's text.
CONSOLE_LINES = 20

_ATTACHMENTS = pytest.StashKey[List[str]]()

# Terminal control sequences and carriage returns of a serial console.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\r")


def console_tail(vm: Any, lines: int = CONSOLE_LINES) -> str:
    """The last ``lines`` lines of a VM's console log, without terminal control sequences;
    empty when there is none."""
    return _CONTROL.sub("", vm._native.console_tail(lines))


def _involved(item: pytest.Item, vms: Dict[str, Any]) -> List[str]:
    vm = getattr(item, "funcargs", {}).get("lago_vm")
    return [vm.name()] if vm is not None else sorted(vms)


def failed(item: pytest.Item, report: pytest.TestReport, env: Any, dest: Path) -> None:
    """A failed call of a test that used ``env``, whose artifacts went to ``dest``: the console
    tail in its failure text, the console logs copied to ``dest``, its properties, and the files
    to attach (see the module)."""
    item.user_properties.append(("lago_workdir", str(env.workdir)))
    item.user_properties.append(("lago_prefix", Path(env.prefix_path).name))
    init_file = getattr(env, "_lago_init_file", None)
    if init_file is not None:
        item.user_properties.append(("lago_init_file", str(init_file)))
    try:
        vms = env.get_vms()
    except LagoError as e:  # the environment may be what broke: its artifacts are still attached
        report.sections.append(("lago", f"reading the environment's VMs failed: {e}"))
        vms = {}
    dest.mkdir(parents=True, exist_ok=True)
    for name, vm in sorted(vms.items()):
        log = Path(vm._native.console_log())
        if log.is_file():
            shutil.copyfile(log, dest / f"{name}.console.log")
    item.stash[_ATTACHMENTS] = sorted(str(p.resolve()) for p in dest.rglob("*") if p.is_file())
    for name in _involved(item, vms):
        tail = console_tail(vms[name]) if name in vms else ""
        _add_section(report, f"console of {name} (last {CONSOLE_LINES} lines)", tail or "(nothing on its console since this VM started, or was forked)")


def _add_section(report: pytest.TestReport, title: str, text: str) -> None:
    longrepr = report.longrepr
    if hasattr(longrepr, "addsection"):
        longrepr.addsection(title, text)  # type: ignore[union-attr]
    elif isinstance(longrepr, str):
        report.longrepr = f"{longrepr}\n{' ' + title + ' ':-^80}\n{text}"


def teardown(item: pytest.Item, report: pytest.TestReport) -> None:
    """The test's teardown report carries what its JUnit ``<system-out>`` attaches."""
    paths = list(item.stash.get(_ATTACHMENTS, []))
    capture = getattr(item, "lago_capture_path", None)
    if capture:
        paths.append(str(Path(capture).resolve()))
    if paths:
        report.lago_attachments = paths  # type: ignore[attr-defined]


class JunitAttachments:
    """Writes the ``lago_attachments`` of a test's teardown report into its JUnit
    ``<testcase>``'s ``<system-out>`` (in the process that writes the XML: the xdist controller,
    or the one process)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Any:
        paths: Optional[List[str]] = getattr(report, "lago_attachments", None)
        xml = _logxml(self.config)
        if report.when != "teardown" or not paths or xml is None:
            yield
            return
        # The test's testcase, which junitxml finalizes (turns into its element) on this report.
        reporter = xml.node_reporter(report)
        yield
        finalized = reporter.__dict__.get("to_xml")
        if finalized is None:
            return
        testcase = finalized()
        out = testcase.find("system-out")
        if out is None:
            out = testcase.makeelement("system-out", {})
            testcase.append(out)
        lines = "".join(f"[[ATTACHMENT|{p}]]\n" for p in paths)
        out.text = (out.text or "") + ("\n" if out.text and not out.text.endswith("\n") else "") + lines


def _logxml(config: pytest.Config) -> Any:
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # a pytest without it writes no attachments
        return None
    return config.stash.get(xml_key, None)
