"""The wait helpers of the SDK's VMs (lago's own) on the shared `tiny` lab: each ends when the
VM is ready, and a timeout raises ``LagoWaitTimeoutError`` saying what was seen last."""

import threading

import pytest

import lago
from lago.plugins.vm import LagoVMNotRunningError, LagoWaitTimeoutError, VMError


def in_background(call, *args, **kwargs):
    """Runs ``call`` on a thread; the returned function joins it and gives its result (or raises)."""
    box = {}

    def run():
        try:
            box["value"] = call(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - handed to the test's thread
            box["error"] = err

    thread = threading.Thread(target=run)
    thread.start()

    def result():
        thread.join(120)
        if "error" in box:
            raise box["error"]
        return box["value"]

    return result


def test_the_timeout_error_is_a_lago_error_and_a_timeout_error() -> None:
    assert issubclass(LagoWaitTimeoutError, VMError)
    assert issubclass(LagoWaitTimeoutError, lago.LagoError)
    assert issubclass(LagoWaitTimeoutError, TimeoutError)


def test_each_wait_ends_when_ready_and_times_out_with_what_it_saw(lab) -> None:
    env, _, _ = lab
    vm = env.get_vms()["vm02"]

    # A command: the successful try's status; a list is joined as vm.ssh joins it.
    done = in_background(vm.wait_for, ["cat", "/run/py-answer"], timeout=60)
    vm.ssh("sleep 1; echo 42 > /run/py-answer")
    assert done().out == "42\n"
    with pytest.raises(LagoWaitTimeoutError) as err:
        vm.wait_for("echo still-failing >&2; exit 4", timeout=1.5)
    assert "`echo still-failing >&2; exit 4` did not succeed within 1.5 s; its last try exited with 4:\nstill-failing" in str(err.value)

    # A port.
    vm.wait_for_port(22, timeout=30)
    with pytest.raises(LagoWaitTimeoutError, match=r"nothing listened on TCP port 9090 within 1 s; last seen: connection refused: nothing listened on 9090 \(listening: .*22"):
        vm.wait_for_port(9090, timeout=1)

    # A service of tiny's init scripts, and one it lacks.
    vm.wait_for_unit("dropbear", timeout=30)
    with pytest.raises(LagoWaitTimeoutError, match="service nope was not active within 1 s; last seen: missing"):
        vm.wait_for_unit("nope", timeout=1)

    # A file.
    done = in_background(vm.wait_for_file, "/run/py-ready", timeout=60)
    vm.ssh("sleep 1; touch /run/py-ready")
    assert done() is None
    with pytest.raises(LagoWaitTimeoutError, match="/run/py-absent did not appear within 1 s; last seen: ls: .*No such file"):
        vm.wait_for_file("/run/py-absent", timeout=1)

    # The console: the matching line.
    done = in_background(vm.wait_for_console, r"py-console-\d+$", timeout=60)
    vm.ssh("sleep 1; echo py-console-7 > /dev/console")
    assert done().endswith("py-console-7")
    with pytest.raises(LagoWaitTimeoutError) as err:
        vm.wait_for_console("never printed", timeout=1)
    assert "nothing on its console matched /never printed/ within 1 s; its last lines:\n" in str(err.value)
    assert "py-console-7" in str(err.value)
    assert "Hint: the whole console log is the prefix's logs/vm02.console.log" in str(err.value)


def test_wrong_waits_raise_before_waiting(lab) -> None:
    env, _, _ = lab
    vm = env.get_vms()["vm02"]
    with pytest.raises(lago.LagoUserError, match='Bad regular expression "py-\\(" for the console'):
        vm.wait_for_console("py-(", timeout=1)
    with pytest.raises(ValueError, match="timeout must be a number of seconds, 0 or more"):
        vm.wait_for_port(22, timeout=-1)


def test_a_wait_on_a_vm_that_does_not_run_says_so(tmp_path, lago_config) -> None:
    from conftest import ONE_VM_INIT
    from lago import sdk
    config = tmp_path / "LagoInitFile"
    config.write_text(ONE_VM_INIT)
    env = sdk.init(config, workdir=tmp_path / "work")
    try:
        with pytest.raises(LagoVMNotRunningError, match="VM vm01 is not running"):
            env.get_vms()["vm01"].wait_for_file("/etc/hostname", timeout=1)
    finally:
        env.destroy()
