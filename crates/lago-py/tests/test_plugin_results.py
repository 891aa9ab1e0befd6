"""The pytest plugin's results for CI (a failed test's attachments, properties and console tail
in the JUnit XML and the terminal) and its variants (several init files, ``lago_env``
parametrized over them), run by pytester."""

import site
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import ONE_VM_INIT, plugin_ini, processes_naming

RESULTS_INIT = """\
domains:
  vm01:
    memory: 256
    nics: [{net: lab}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
    artifacts: [/etc/hostname]
nets:
  lab: {management: true}
"""

TWO_VM_INIT = """\
base: &base
  memory: 256
  nics: [{net: lab}]
  disks: [{template_name: tiny, type: template, name: root, dev: vda}]
domains:
  vm02: *base
  vm03: *base
nets:
  lab: {management: true}
"""


def _testcase(report: Path, name: str) -> ET.Element:
    found = [t for t in ET.parse(report).getroot().iter("testcase") if t.get("name") == name]
    assert len(found) == 1, ET.tostring(ET.parse(report).getroot()).decode()
    return found[0]


def _attachments(testcase: ET.Element) -> list:
    outs = testcase.findall("system-out")
    assert len(outs) <= 1, "one <system-out> per testcase"
    text = outs[0].text or "" if outs else ""
    return [line[len("[[ATTACHMENT|"):-2] for line in text.splitlines() if line.startswith("[[ATTACHMENT|")]


def test_a_failed_test_carries_its_artefacts_properties_and_console_tail(pytester, lago_config) -> None:
    (pytester.path / "lab.yaml").write_text(RESULTS_INIT)
    plugin_ini(pytester, lago_config, "lab.yaml", "lago_env_reset = revert")
    # What the capture of a failed test leaves (`item.lago_capture_path`), made here by a hook.
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_makereport(item, call):
            if call.when == "call" and call.excinfo is not None:
                path = item.config.rootpath / "captures" / (item.name + ".capture")
                path.parent.mkdir(exist_ok=True)
                path.write_text("a capture")
                item.lago_capture_path = str(path)
        """
    )
    pytester.makepyfile(
        test_results="""
        def test_1_passes(lago_env):
            print("the passing test's own output")
            assert lago_env.get_vms()["vm01"].running()

        def test_2_fails(lago_env):
            print("the failing test's own output")
            vm = lago_env.get_vms()["vm01"]
            assert vm.ssh(["echo lago-console-marker > /dev/ttyS0"]).code == 0
            assert vm.ssh(["false"]).code == 0
        """
    )
    result = pytester.runpytest("-v", "--junitxml=report.xml", "-o", "junit_logging=system-out")
    result.assert_outcomes(passed=1, failed=1)
    # The terminal's failure text ends with the VM's console, under a header naming it.
    result.stdout.fnmatch_lines(["*- console of vm01 (last 20 lines) -*", "*lago-console-marker*"])
    # The environment went with the module: what is attached outlives it.
    assert not list(pytester.path.glob("**/.lago/default"))

    report = pytester.path / "report.xml"
    failed = _testcase(report, "test_2_fails")
    properties = {p.get("name"): p.get("value") for p in failed.iter("property")}
    assert properties["lago_prefix"] == "default", properties
    assert properties["lago_workdir"].endswith("/.lago"), properties
    assert properties["lago_init_file"] == str(pytester.path / "lab.yaml"), properties
    assert properties["lago_env_reset"].startswith("reverted to lago-pytest-clean in "), properties
    failure = failed.find("failure").text
    assert "console of vm01 (last 20 lines)" in failure
    # It ends with them: the line the test wrote on the console last.
    assert failure.rstrip().splitlines()[-1].endswith("lago-console-marker"), failure

    dest = pytester.path / "lago-artifacts" / "test_results.py_test_2_fails"
    attached = _attachments(failed)
    assert attached == sorted(attached[:-1]) + [attached[-1]], attached
    assert set(attached) == {
        str(dest / "vm01" / "_etc_hostname"),
        str(dest / "vm01.console.log"),
        str(pytester.path / "captures" / "test_2_fails.capture"),
    }, attached
    assert all(Path(p).is_file() for p in attached)
    assert Path(attached[0]).is_absolute()
    assert "lago-console-marker" in (dest / "vm01.console.log").read_text(errors="replace")
    # The attachments join the test's own captured output in its one <system-out>.
    assert "the failing test's own output" in failed.find("system-out").text

    passed = _testcase(report, "test_1_passes")
    assert _attachments(passed) == []
    assert "the passing test's own output" in passed.find("system-out").text
    assert not {"lago_workdir", "lago_prefix"} & {p.get("name") for p in passed.iter("property")}
    assert not (pytester.path / "lago-artifacts" / "test_results.py_test_1_passes").exists()


def test_several_init_files_are_variants_each_with_its_own_environment(pytester, lago_config) -> None:
    (pytester.path / "tiny.yaml").write_text(ONE_VM_INIT)
    (pytester.path / "cloud-image.yaml").write_text(ONE_VM_INIT.replace("vm01", "vm02"))
    plugin_ini(pytester, lago_config, "tiny.yaml cloud-image.yaml")
    seen = pytester.path / "seen"
    pytester.makepyfile(
        test_variants=f"""
        def _note(request, lago_env):
            [(name, vm)] = lago_env.get_vms().items()
            boot = vm.ssh(["cat", "/proc/sys/kernel/random/boot_id"]).out.decode().strip()
            with open({str(seen)!r}, "a") as f:
                f.write(f"{{request.node.name}} {{lago_env.prefix_path}} {{name}} {{boot}}\\n")

        def test_a(request, lago_env):
            _note(request, lago_env)

        def test_b(request, lago_env):
            _note(request, lago_env)
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=4)
    # Each variant's environment is set up once: its tests run one after the other.
    result.stdout.fnmatch_lines([
        "*test_a?tiny? PASSED*", "*test_b?tiny? PASSED*",
        "*test_a?cloud-image? PASSED*", "*test_b?cloud-image? PASSED*",
    ])
    rows = {test: rest for test, *rest in (line.split() for line in seen.read_text().splitlines())}
    assert set(rows) == {"test_a[tiny]", "test_b[tiny]", "test_a[cloud-image]", "test_b[cloud-image]"}
    for variant, vm in (("tiny", "vm01"), ("cloud-image", "vm02")):
        assert rows[f"test_a[{variant}]"] == rows[f"test_b[{variant}]"], "one environment, one boot, per variant"
        assert rows[f"test_a[{variant}]"][1] == vm
    assert rows["test_a[tiny]"][0] != rows["test_a[cloud-image]"][0]
    # Each went at the end.
    for prefix, *_ in rows.values():
        assert not Path(prefix).exists()
        assert not processes_naming(Path(prefix))


def test_variant_ids_with_lago_vm_and_markers(pytester) -> None:
    (pytester.path / "envs" / "tiny").mkdir(parents=True)
    (pytester.path / "envs" / "cloud").mkdir(parents=True)
    (pytester.path / "envs" / "tiny" / "LagoInitFile").write_text(ONE_VM_INIT)
    (pytester.path / "envs" / "cloud" / "LagoInitFile").write_text(TWO_VM_INIT)
    (pytester.path / "one.yaml").write_text(ONE_VM_INIT)
    pytester.makeini("[pytest]\nlago_init_file = envs/tiny/LagoInitFile envs/cloud/LagoInitFile\n")
    pytester.makepyfile(
        test_ids="""
        import pytest

        def test_env(lago_env):
            pass

        def test_vm(lago_vm):
            pass

        @pytest.mark.lago_init_file("one.yaml")
        def test_one_file_is_not_parametrized(lago_vm):
            pass

        @pytest.mark.lago_init_file(["one.yaml", "envs/tiny/LagoInitFile"])
        def test_marker(lago_env):
            pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    collected = sorted(line for line in result.stdout.lines if line.startswith("test_ids.py::"))
    assert collected == sorted([
        "test_ids.py::test_env[tiny]", "test_ids.py::test_env[cloud]",
        "test_ids.py::test_vm[tiny-vm01]", "test_ids.py::test_vm[cloud-vm02]", "test_ids.py::test_vm[cloud-vm03]",
        "test_ids.py::test_one_file_is_not_parametrized[vm01]",
        "test_ids.py::test_marker[one]", "test_ids.py::test_marker[LagoInitFile]",
    ]), result.stdout.str()


def test_variants_whose_names_cannot_tell_them_apart_are_a_usage_error(pytester) -> None:
    (pytester.path / "a").mkdir()
    (pytester.path / "b").mkdir()
    (pytester.path / "a" / "envs").mkdir()
    (pytester.path / "b" / "envs").mkdir()
    for d in ("a", "b"):
        (pytester.path / d / "envs" / "lab.yaml").write_text(ONE_VM_INIT)
    pytester.makeini("[pytest]\nlago_init_file = a/envs/lab.yaml b/envs/lab.yaml\n")
    pytester.makepyfile(test_same="def test_x(lago_env):\n    pass\n")
    result = pytester.runpytest("--collect-only")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*lago_init_file: the init files */a/envs/lab.yaml, */b/envs/lab.yaml need names (or directories) that differ*"])


def test_variants_and_attachments_under_xdist(pytester, lago_config, monkeypatch) -> None:
    # The packages of this user (pytest-xdist, lago) are found through this process's user base.
    monkeypatch.setenv("PYTHONUSERBASE", site.getuserbase())
    (pytester.path / "tiny.yaml").write_text(ONE_VM_INIT)
    (pytester.path / "other.yaml").write_text(ONE_VM_INIT.replace("vm01", "vm02"))
    plugin_ini(pytester, lago_config, "tiny.yaml other.yaml")
    seen = pytester.path / "seen"
    pytester.makepyfile(
        test_xdist=f"""
        import os
        import pytest

        @pytest.mark.parametrize("n", range(2))
        def test_x(lago_env, lago_vm, n):
            with open({str(seen)!r}, "a") as f:
                f.write(f"{{os.environ['PYTEST_XDIST_WORKER']}} {{lago_env.prefix_path}} {{lago_vm.name()}}\\n")

        def test_fails(lago_vm):
            assert lago_vm.ssh(["false"]).code == 0
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-v", "--junitxml=report.xml")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(["*test_x?tiny-vm01-0? *", "*test_x?other-vm02-1? *", "*test_fails?other-vm02? *"])
    # Each variant's environment is booted once (its origin) and forked per worker.
    origins = {}
    for worker, prefix, vm in (line.split() for line in seen.read_text().splitlines()):
        assert Path(prefix).name.startswith(worker + "-")
        origins.setdefault(vm, set()).add(Path(prefix).parent)
    assert set(origins) == {"vm01", "vm02"} and all(len(o) == 1 for o in origins.values()), origins
    assert origins["vm01"] != origins["vm02"]
    # The failures' attachments came back from the workers into the controller's XML.
    report = pytester.path / "report.xml"
    for variant, vm in (("tiny", "vm01"), ("other", "vm02")):
        testcase = _testcase(report, f"test_fails[{variant}-{vm}]")
        dest = pytester.path / "lago-artifacts" / f"test_xdist.py_test_fails_{variant}-{vm}"
        assert _attachments(testcase) == [str(dest / f"{vm}.console.log")]
        properties = {p.get("name"): p.get("value") for p in testcase.iter("property")}
        assert properties["lago_init_file"] == str(pytester.path / f"{variant}.yaml")
        assert "console of " + vm in testcase.find("failure").text
