"""The pytest plugin's ``--lago-keep`` (pytester), and the kept environment seen and ended by
``lago envs``: the register is the test's own (``XDG_STATE_HOME``)."""

import json
import os
import re
import subprocess
from pathlib import Path

from conftest import lago_binary, plugin_ini

KEEP_INIT = """\
domains:
  vm01:
    memory: 256
    nics: [{net: lab}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
    forwards: [{guest: 8080}]
nets:
  lab: {management: true}
"""

#: Writes each test's ``item.lago_workdir`` and ``item.lago_prefix_name`` to ``items.txt``.
ITEMS_CONFTEST = """
import pytest

@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    if hasattr(item, "lago_workdir"):
        with open("items.txt", "a") as f:
            f.write(f"{item.nodeid} {item.lago_workdir} {item.lago_prefix_name}\\n")
"""


def _lago(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(lago_binary()), *args], capture_output=True, text=True, env=os.environ.copy())


def _envs() -> list:
    run = _lago("-f", "json", "envs")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _qemu_of(prefix: Path) -> list:
    """The pids of processes whose command line names the prefix (its qemu, its switch)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(prefix).encode() in cmdline:
                found.append(int(proc.name))
    return found


def test_a_bad_keep_value_is_a_usage_error(pytester) -> None:
    pytester.makepyfile(test_nothing="def test_x():\n    pass\n")
    result = pytester.runpytest("--lago-keep=sometimes")
    result.stderr.fnmatch_lines(["*--lago-keep: 'sometimes' is not one of never, on-failure, always*"])
    assert result.ret == 4
    pytester.makeini("[pytest]\nlago_keep = maybe\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["*ini option lago_keep: 'maybe' is not one of never, on-failure, always*"])
    assert result.ret == 4


def test_on_failure_keeps_the_failed_tests_environment_until_lago_envs_ends_it(pytester, lago_config, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (pytester.path / "lab.yaml").write_text(KEEP_INIT)
    plugin_ini(pytester, lago_config, "lab.yaml")
    pytester.makeconftest(ITEMS_CONFTEST)
    pytester.makepyfile(
        test_a="""
        def test_fails(lago_env):
            vm = lago_env.get_vms()["vm01"]
            assert vm.ssh(["touch", "/root/made-by-the-test"]).code == 0
            assert vm.ssh(["false"]).code == 0
        """,
        test_b="""
        def test_passes(lago_env):
            assert lago_env.get_vms()["vm01"].ssh(["true"]).code == 0
        """,
    )
    result = pytester.runpytest("--lago-keep=on-failure", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    # The failure report: how to reach the environment, its workdir on a line of its own.
    workdirs = re.findall(r"^lago workdir: (\S+)$", out, re.M)
    assert len(workdirs) == 1, out
    workdir = Path(workdirs[0])
    prefix = workdir / "default"
    result.stdout.fnmatch_lines([
        "*environment kept (--lago-keep=on-failure), reach it with:*",
        f"lago prefix: default (lago envs lists it; lago --workdir {workdir} --prefix-name default destroy ends it)",
        f"vm01: lago --workdir {workdir} --prefix-name default shell vm01",
        "vm01: ssh -o UserKnownHostsFile=* -o HostKeyAlias=vm01 -o IdentitiesOnly=yes -i * -p * root@127.0.0.1",
        "vm01: forward 127.0.0.1:* -> 8080 (init file)",
    ])
    result.stdout.fnmatch_lines(["*lago: kept environments*", "pytest test_a.py::test_fails:", f"  lago workdir: {workdir}"])
    # Each test that used lago_env carries its workdir and prefix name.
    items = (pytester.path / "items.txt").read_text().splitlines()
    assert f"test_a.py::test_fails {workdir} default" in items, items
    passed = [line.split() for line in items if line.startswith("test_b.py::test_passes ")]
    assert len(passed) == 1, items
    # The passing module's environment went; the failed one's runs.
    assert not (Path(passed[0][1]) / "default").exists()
    assert prefix.is_dir()
    assert _qemu_of(prefix), "the kept environment's qemu runs"
    # Its ssh command line reaches the VM as the test left it.
    ssh = re.search(r"^vm01: (ssh .*)$", out, re.M).group(1)
    seen = subprocess.run(ssh + " -- ls /root/made-by-the-test", shell=True, capture_output=True, text=True, timeout=120)
    assert seen.returncode == 0, seen.stderr
    # So does `lago shell`.
    shell = _lago("--workdir", str(workdir), "--prefix-name", "default", "shell", "vm01", "hostname")
    assert shell.stdout.strip() == "vm01", shell.stderr
    # `lago envs` lists it, kept by the test; the other module's is not there.
    rows = _envs()
    assert [(r["path"], r["state"], r["kept_by"]) for r in rows] == [(str(prefix), "running", "pytest test_a.py::test_fails")], rows
    # `--destroy-older-than 0s` ends it: no process of it, no prefix, nothing listed.
    ended = _lago("envs", "--destroy-older-than", "0s")
    assert ended.returncode == 0, ended.stderr
    assert ended.stdout.startswith(f"destroyed {prefix} (age "), ended.stdout
    assert not prefix.exists()
    assert not _qemu_of(prefix)
    assert _envs() == []


def test_always_keeps_and_never_destroys(pytester, lago_config, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (pytester.path / "lab.yaml").write_text(KEEP_INIT)
    # The ini says always; the command line's never wins.
    plugin_ini(pytester, lago_config, "lab.yaml", "lago_keep = always")
    pytester.makepyfile(test_c="def test_fails(lago_env):\n    assert False\n")
    result = pytester.runpytest("--lago-keep=never", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "lago workdir:" not in result.stdout.str()
    assert not list(pytester.path.glob("basetemp/**/.lago/default"))
    assert _envs() == []
    # always: a passing test's environment is kept too, the summary says how to reach it.
    pytester.makepyfile(test_c="def test_passes(lago_env):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*lago: kept environments*", "pytest test_c.py (--lago-keep=always):", "  lago workdir: *"])
    rows = _envs()
    assert len(rows) == 1 and rows[0]["state"] == "running" and rows[0]["kept_by"] == "pytest test_c.py (--lago-keep=always)", rows
    ended = _lago("envs", "--destroy-older-than", "0s")
    assert ended.returncode == 0, ended.stderr
    assert not Path(rows[0]["path"]).exists()
    assert _envs() == []


def test_a_kept_fork_outlives_the_runs_end(pytester, lago_config, tmp_path, monkeypatch) -> None:
    """With ``lago_env_reset = fork`` the failed test's copy is kept; the run's end destroys the
    booted environment it was forked from, not the copy."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (pytester.path / "lab.yaml").write_text(KEEP_INIT)
    plugin_ini(pytester, lago_config, "lab.yaml", "lago_env_reset = fork")
    pytester.makepyfile(
        test_f="""
        def test_fails(lago_env):
            vm = lago_env.get_vms()["vm01"]
            assert vm.ssh(["touch", "/root/in-the-copy"]).code == 0
            assert False
        """
    )
    result = pytester.runpytest("--lago-keep=on-failure", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    workdir = Path(re.search(r"^lago workdir: (\S+)$", result.stdout.str(), re.M).group(1))
    result.stdout.fnmatch_lines([f"vm01: lago --workdir {workdir} --prefix-name main-1 shell vm01"])
    rows = _envs()
    assert [(Path(r["path"]).name, r["state"], r["kept_by"]) for r in rows] == [("main-1", "running", "pytest test_f.py::test_fails")], rows
    assert not (workdir / "default").exists(), "the booted environment went at the run's end"
    seen = _lago("--workdir", str(workdir), "--prefix-name", "main-1", "shell", "vm01", "ls /root/in-the-copy")
    assert seen.returncode == 0, seen.stderr
    ended = _lago("envs", "--destroy-older-than", "0s")
    assert ended.returncode == 0, ended.stderr
    assert not (workdir / "main-1").exists()
    assert not _qemu_of(workdir)
    assert _envs() == []
