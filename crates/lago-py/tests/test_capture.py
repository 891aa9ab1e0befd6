"""The pytest plugin's captures (`--lago-capture`, ini `lago_capture`), run by pytester: a failed
test's environment captured before it is destroyed, the report naming the artefact on a line of
its own, and the artefact replayed elsewhere with the file and the background process (same pid)
the test made before it failed."""

import subprocess

from conftest import ONE_VM_INIT, lago_binary, plugin_ini
from lago import _pytest_capture


def test_capture_names_are_test_ids_a_capture_can_take() -> None:
    assert _pytest_capture.name_of("test_cap.py::test_a_failure") == "test_cap.py_test_a_failure"
    assert _pytest_capture.name_of("t.py::test_x[vm01-a b]") == "t.py_test_x_vm01-a_b"
    long = _pytest_capture.name_of("test_" + "x" * 100 + ".py::test_y")
    assert len(long) <= 63 and long[0].isalnum() and long.endswith("test_y")


def test_a_bad_mode_is_a_usage_error(pytester, lago_config) -> None:
    (pytester.path / "lab.yaml").write_text(ONE_VM_INIT)
    plugin_ini(pytester, lago_config, "lab.yaml", "lago_capture = sometimes")
    pytester.makepyfile(test_nothing="def test_x():\n    pass\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["*lago_capture: 'sometimes' is not 'never' or 'on-failure'*"])
    assert result.ret != 0
    result = pytester.runpytest("--lago-capture=always")
    result.stderr.fnmatch_lines(["*--lago-capture: invalid choice: 'always'*"])


def test_a_failed_test_is_captured_and_comes_back_running_elsewhere(pytester, lago_config, tmp_path) -> None:
    (pytester.path / "lab.yaml").write_text(ONE_VM_INIT)
    plugin_ini(pytester, lago_config, "lab.yaml")
    pid_file = pytester.path / "pid"
    pytester.makepyfile(
        test_cap=f"""
        def test_a_failure(lago_env):
            vm = lago_env.get_vms()["vm01"]
            # One word: the command line the VM's shell runs.
            out = vm.ssh(["echo made-by-the-test > /root/made; (sleep 10000 </dev/null >/dev/null 2>&1 &); sleep 0.3; pidof sleep"])
            open({str(pid_file)!r}, "w").write(out.out.decode().strip())
            assert False, "the test fails"

        def test_a_pass(lago_env):
            pass
        """
    )
    result = pytester.runpytest("-v", "--lago-capture=on-failure")
    result.assert_outcomes(passed=1, failed=1)
    artefact = pytester.path / "lago-artifacts" / "test_cap.py_test_a_failure.lago-capture"
    # The artefact on a line of its own; only the failed test has one.
    result.stdout.fnmatch_lines([f"lago artefact: {artefact}"])
    assert len(list((pytester.path / "lago-artifacts").glob("*.lago-capture"))) == 1
    # The environment went with the module.
    assert not list(pytester.path.glob("**/.lago/default"))

    # Moved to another directory and replayed there.
    moved = tmp_path / "elsewhere" / artefact.name
    moved.parent.mkdir()
    artefact.rename(moved)
    lago = str(lago_binary())
    workdir = tmp_path / "elsewhere" / "replayed"
    subprocess.run([lago, "replay", str(moved), str(workdir)], check=True, capture_output=True)
    try:
        seen = subprocess.run(
            [lago, "--workdir-path", str(workdir), "shell", "vm01", "cat /root/made; pidof sleep"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        assert seen == ["made-by-the-test", pid_file.read_text()]
        # The test's collected artifacts went along.
        assert (workdir / "default" / "captured" / "logs" / "vm01.console.log").is_file()
        assert (workdir / "default" / "captured" / "init" / "lab.yaml").read_text() == ONE_VM_INIT
    finally:
        subprocess.run([lago, "--workdir-path", str(workdir), "destroy", "--yes"], capture_output=True)


def test_no_capture_by_default(pytester, lago_config) -> None:
    (pytester.path / "lab.yaml").write_text(ONE_VM_INIT)
    plugin_ini(pytester, lago_config, "lab.yaml")
    pytester.makepyfile(test_cap="def test_a_failure(lago_env):\n    assert False\n")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert "lago artefact:" not in result.stdout.str()
    assert not list(pytester.path.glob("lago-artifacts/*.lago-capture"))


def test_kept_and_captured_the_capture_replays_after_the_kept_environment_is_ended(pytester, lago_config, tmp_path, monkeypatch) -> None:
    """The issue's whole story: a failed test kept (``--lago-keep``) and captured; ``lago envs``
    lists the kept environment and ends it; the artefact, moved elsewhere, replays the VM with the
    test's file and background process (same pid); ``lago envs`` lists the replayed one too."""
    import json
    import os
    import re

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (pytester.path / "lab.yaml").write_text(ONE_VM_INIT)
    plugin_ini(pytester, lago_config, "lab.yaml")
    pid_file = pytester.path / "pid"
    pytester.makepyfile(
        test_cap=f"""
        def test_a_failure(lago_env):
            out = lago_env.get_vms()["vm01"].ssh(["echo made > /root/made; (sleep 10000 </dev/null >/dev/null 2>&1 &); sleep 0.3; pidof sleep"])
            open({str(pid_file)!r}, "w").write(out.out.decode().strip())
            assert False
        """
    )
    result = pytester.runpytest("--lago-keep=on-failure", "--lago-capture=on-failure", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    workdir = re.search(r"^lago workdir: (\S+)$", out, re.M).group(1)
    artefact = re.search(r"^lago artefact: (\S+)$", out, re.M).group(1)
    lago = str(lago_binary())

    def envs() -> list:
        run = subprocess.run([lago, "-f", "json", "envs"], capture_output=True, text=True, env=os.environ.copy())
        assert run.returncode == 0, run.stderr
        return [r["path"] for r in json.loads(run.stdout)]

    assert envs() == [f"{workdir}/default"]
    moved = tmp_path / "elsewhere" / "failed.lago-capture"
    moved.parent.mkdir()
    os.rename(artefact, moved)
    ended = subprocess.run([lago, "envs", "--destroy-older-than", "0s"], capture_output=True, text=True)
    assert ended.returncode == 0, ended.stderr
    assert envs() == []
    replayed = tmp_path / "elsewhere" / "replayed"
    run = subprocess.run([lago, "replay", str(moved), str(replayed)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    try:
        assert envs() == [f"{replayed}/default"]
        seen = subprocess.run(
            [lago, "--workdir-path", str(replayed), "shell", "vm01", "cat /root/made; pidof sleep"],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert seen == ["made", pid_file.read_text()]
    finally:
        subprocess.run([lago, "--workdir-path", str(replayed), "destroy", "--yes"], capture_output=True)
    assert envs() == []
