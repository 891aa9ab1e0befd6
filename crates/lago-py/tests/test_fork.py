"""Forks from Python: ``env.fork(n)`` and the pytest plugin's forks (pytest-xdist workers, each
with its own copy of the environment booted once; ``lago_env_reset = fork``)."""

import os
import site
from pathlib import Path

from conftest import ONE_VM_INIT, processes_naming


def _out(vm, *argv: str) -> str:
    status = vm.ssh(list(argv))
    assert status.code == 0, status
    return status.out.decode().strip()


def test_env_fork_gives_copies_that_go_on_from_one_instant(tmp_path: Path, lago_config) -> None:
    from lago import sdk

    (tmp_path / "LagoInitFile").write_text(ONE_VM_INIT)
    workdir = tmp_path / ".lago"
    env = sdk.init(tmp_path / "LagoInitFile", workdir=workdir)
    try:
        env.start()
        origin = env.get_vms()["vm01"]
        pid = _out(origin, "echo before > /root/before; (sleep 100000 </dev/null >/dev/null 2>&1 &); sleep 0.3; pidof sleep")
        uptime = float(_out(origin, "cut -d' ' -f1 /proc/uptime"))
        copies = env.fork(2)
        assert [c.prefix_path.name for c in copies] == ["default-1", "default-2"]
        assert all(isinstance(c, sdk.SDK) for c in copies)
        for copy in copies:
            vm = copy.get_vms()["vm01"]
            assert _out(vm, "cat /root/before; pidof sleep") == f"before\n{pid}"
        _out(copies[0].get_vms()["vm01"], "echo mine > /root/mine")
        for other in (copies[1], env):
            assert other.get_vms()["vm01"].ssh(["test", "-e", "/root/mine"]).code == 1
        assert float(_out(origin, "cut -d' ' -f1 /proc/uptime")) >= uptime
        # More copies of the same frozen state; a copy back to it in place.
        third = env.fork(1, from_frozen=True)[0]
        assert third.prefix_path.name == "default-3"
        copies[0].renew()
        assert copies[0].get_vms()["vm01"].ssh(["test", "-e", "/root/mine"]).code == 1
        frozen = [p for p in workdir.iterdir() if p.name.startswith(".frozen-")]
        assert len(frozen) == 1, frozen
        for copy in copies + [third]:
            copy.destroy()
            assert frozen[0].is_dir()
            assert origin.running()
    finally:
        env.destroy()
    assert not frozen[0].exists(), "the frozen state went with the last prefix that used it"
    assert not processes_naming(workdir)


def test_xdist_workers_each_get_a_fork_and_each_test_a_fresh_one(pytester, lago_config, monkeypatch) -> None:
    # pytester gives the run a HOME of its own: the packages installed for this user (pytest,
    # pytest-xdist, lago, all `pip --user`) are found through the user base of this process.
    monkeypatch.setenv("PYTHONUSERBASE", site.getuserbase())
    (pytester.path / "lab.yaml").write_text(ONE_VM_INIT)
    pytester.makeini(
        f"""
        [pytest]
        lago_init_file = lab.yaml
        lago_env_reset = fork
        lago_init_options =
            template_repo_path={lago_config['LAGO__INIT__TEMPLATE_REPO_PATH']}
            template_store={lago_config['LAGO__INIT__TEMPLATE_STORE']}
        """
    )
    seen = pytester.path / "seen"
    pytester.makepyfile(
        test_forks=f"""
        import os
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_clean_and_own(lago_env, n):
            vm = lago_env.get_vms()["vm01"]
            assert vm.ssh(["test", "!", "-e", "/root/dirty"]).code == 0, "not a clean copy"
            assert vm.ssh(["touch", "/root/dirty"]).code == 0
            worker = os.environ["PYTEST_XDIST_WORKER"]
            assert lago_env.prefix_path.name.startswith(worker + "-")
            with open({str(seen)!r}, "a") as f:
                f.write(f"{{worker}} {{lago_env.prefix_path}}\\n")
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-v", "-rA")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*environment reset before the test: a fresh fork in * s*"])
    result.stdout.fnmatch_lines(["*environment reset before the test: renewed from its frozen state in * s*"])
    lines = [line.split() for line in seen.read_text().splitlines()]
    prefixes = {worker: set() for worker, _ in lines}
    for worker, prefix in lines:
        prefixes[worker].add(prefix)
    assert set(prefixes) == {"gw0", "gw1"}, lines
    assert all(len(p) == 1 for p in prefixes.values()), "one environment per worker"
    paths = [Path(next(iter(p))) for p in prefixes.values()]
    assert paths[0] != paths[1] and paths[0].parent == paths[1].parent, "forks of one environment"
    # The booted environment and every fork went at the end of the run.
    assert not paths[0].parent.exists(), list(paths[0].parent.iterdir())
    assert not processes_naming(paths[0].parent)
