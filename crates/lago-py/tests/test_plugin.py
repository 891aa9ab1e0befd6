"""The pytest plugin, run by pytester: `lago_env`, `lago_vm` and the artifacts of failed tests."""

from conftest import ONE_VM_INIT, plugin_ini

PLUGIN_INIT = """\
base: &base
  memory: 256
  disks: [{template_name: tiny, type: template, name: root, dev: vda}]
domains:
  vm01: {<<: *base, nics: [{net: lab}], artifacts: [/etc/hostname]}
  vm02: {<<: *base, nics: [{net: lab}], artifacts: [/etc/hostname, /nonexistent]}
nets:
  lab: {management: true}
"""


def test_env_fixture_vm_parametrization_and_artifacts_of_failures(pytester, lago_config) -> None:
    (pytester.path / "envs").mkdir()
    (pytester.path / "envs" / "lab.yaml").write_text(PLUGIN_INIT)
    plugin_ini(pytester, lago_config, "envs/lab.yaml")
    pytester.makepyfile(
        test_lab="""
        def test_every_vm_answers(lago_vm):
            assert lago_vm.ssh(["hostname"]).out.decode().strip() == lago_vm.name()

        def test_a_failure(lago_env):
            assert lago_env.get_vms()["vm01"].ssh(["false"]).code == 0
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_every_vm_answers?vm01? PASSED*", "*test_every_vm_answers?vm02? PASSED*"])
    result.stdout.fnmatch_lines(["*artifacts of the VMs: *lago-artifacts/test_lab.py_test_a_failure*"])
    artifacts = pytester.path / "lago-artifacts" / "test_lab.py_test_a_failure"
    assert (artifacts / "vm01" / "_etc_hostname").read_text().strip() == "vm01"
    assert (artifacts / "vm02" / "_etc_hostname").read_text().strip() == "vm02"
    # The environment went with the module.
    assert not list(pytester.path.glob("**/.lago/default"))


def test_env_fixture_without_an_init_file_is_a_usage_error(pytester) -> None:
    pytester.makepyfile(test_nothing="def test_x(lago_env):\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*lago_env needs an init file*"])
    assert result.ret != 0


def test_each_test_gets_a_clean_environment(pytester, lago_config) -> None:
    (pytester.path / "lab.yaml").write_text(ONE_VM_INIT)
    plugin_ini(pytester, lago_config, "lab.yaml", "lago_env_reset = revert")
    pytester.makepyfile(
        test_reset="""
        def test_1_deletes_a_file_and_powers_vm01_off(lago_env):
            vm = lago_env.get_vms()["vm01"]
            assert vm.ssh(["rm", "/bin/vi"]).code == 0
            vm.stop()
            assert not vm.running()

        def test_2_finds_the_file_and_vm01_running(lago_env):
            vm = lago_env.get_vms()["vm01"]
            assert vm.running()
            assert vm.ssh(["test", "-e", "/bin/vi"]).code == 0
            assert vm.ssh(["rm", "/bin/vi"]).code == 0

        def test_3_finds_it_again_after_a_revert(lago_env):
            assert lago_env.get_vms()["vm01"].ssh(["test", "-e", "/bin/vi"]).code == 0
        """
    )
    result = pytester.runpytest("-v", "-rA", "--junitxml=report.xml")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*environment reset before the test: started from lago-pytest-clean (a VM was stopped) in * s*"])
    result.stdout.fnmatch_lines(["*environment reset before the test: reverted to lago-pytest-clean in * s*"])
    assert "lago_env_reset" in (pytester.path / "report.xml").read_text()
