"""The original's Python API as its users called it (its own functional SDK tests, oVirt's system
tests), on the shared `tiny` environment: the semantics of `vm.ssh`, `CommandStatus`, the
modules `lago.utils`, `lago.ssh`, `lago.workdir`, `lago.sdk_utils`, the SDK's forwarding to
its prefix, and the members of VMs, networks and services."""

import shutil
import socket
import tarfile
from pathlib import Path

import pytest

import lago
from lago import sdk, ssh, utils
from lago.plugins import service as service_plugins
from lago.plugins.vm import ExtractPathNoPathError, LagoVMNotRunningError, VMPlugin
from lago.workdir import LagoPrefixAlreadyExistsError, MalformedWorkdir, PrefixAlreadyExists, PrefixNotFound, WorkdirError



@pytest.fixture
def vms(lab):
    env, _, _ = lab
    return env.get_vms()


def test_ssh_joins_the_command_for_the_guests_shell(vms) -> None:
    vm = vms["vm01"]
    # The list is joined with spaces, as the original did: pipes, globs, && and $(...) work.
    res = vm.ssh(["echo", "a", "b", "|", "wc", "-w"])
    assert res == (0, b"2\n", b"") and res == (0, "2\n", "")
    assert vm.ssh(["ls", "/etc/host*", "&&", "echo", "$((6 * 7))"]).out.decode().split()[-1] == "42"
    assert vm.ssh("echo whole line").out == b"whole line\n"
    # CommandStatus: true when the command failed (`if ret: raise`); out and err are text that keeps
    # the bytes (the seed's `out='...'` and the last original's `out.decode()` both work).
    failed = vm.ssh(["false"])
    assert isinstance(failed, utils.CommandStatus) and failed and failed.code == 1
    assert not vm.ssh(["true"])
    code, out, err = vm.ssh(["echo oops >&2; exit 4"])
    assert (code, out, err) == (4, b"", b"oops\n")
    assert vm.ssh(["echo", "x"]).out.decode("utf-8") == "x\n"
    # Output that is not UTF-8: the text has U+FFFD, the bytes are the guest's.
    res = vm.ssh(["printf", "'a\\377b\\n'", "&&", "printf", "'\\200'", ">&2"], show_output=False)
    assert not res and bytes(res.out) == b"a\xffb\n" and bytes(res.err) == b"\x80"
    assert res.out == "a\ufffdb\n" and res.err == "\ufffd" and res.out.decode("latin-1") == "a\xffb\n"
    with pytest.raises(UnicodeDecodeError):
        res.out.decode("utf-8")
    assert bytes(vm.ssh(["cat"], data=res.out, show_output=False).out) == b"a\xffb\n"


def test_ssh_takes_the_originals_arguments(vms, capsys) -> None:
    vm = vms["vm01"]
    assert vm.ssh(["cat"], data="to stdin\n", show_output=False, propagate_fail=True, tries=3).out == b"to stdin\n"
    assert vm.ssh(["wc", "-c"], data=b"12345").out.strip() == b"5"
    capsys.readouterr()
    vm.ssh(["echo", "shown"])
    assert "shown" in capsys.readouterr().out
    vm.ssh(["echo", "hidden"], show_output=False)
    assert "hidden" not in capsys.readouterr().out
    # lago's own call quotes each argument instead.
    assert vm.run(["echo", "a  b", "|", "*"]).out == b"a  b | *\n"


def test_ssh_script_runs_a_local_script(vms, tmp_path: Path) -> None:
    script = tmp_path / "s.sh"
    script.write_text("set -e\nx=$(hostname)\necho \"script on $x\"\n")
    res = vms["vm02"].ssh_script(str(script), show_output=False)
    assert res == (0, b"script on vm02\n", b"")


def test_lago_utils_threads_and_commands(vms) -> None:
    names = utils.invoke_in_parallel(lambda vm: vm.ssh(["hostname"], show_output=False).out.strip(), vms.values())
    assert sorted(names) == [b"vm01", b"vm02"]
    vt = utils.VectorThread(utils.func_vector(lambda a, b: a * b, [(2, 3), (4, 5)]))
    vt.start_all()
    assert vt.join_all() == [6, 20]
    assert utils.invoke_different_funcs_in_parallel(lambda: 1, lambda: "two") == [1, "two"]

    def boom() -> None:
        raise ValueError("from a thread")

    with pytest.raises(ValueError, match="from a thread"):
        utils.invoke_different_funcs_in_parallel(boom)
    # run_command: each argument in double quotes for a shell, as the original.
    res = utils.run_command(["echo", "$LAGO_TEST_VAR", "two words"], env={"LAGO_TEST_VAR": "expanded"})
    assert res == (0, b"expanded two words\n", b"")
    assert utils.run_command(["cat"], input_data="in\n").out == b"in\n"
    assert utils.run_command(["false"])
    assert issubclass(utils.LagoUserException, utils.LagoException)
    assert utils.LagoException is lago.LagoError
    assert utils.ipv4_to_mac("192.168.200.2") == "54:52:c0:a8:c8:02"


def test_lago_ssh_reaches_the_vms_of_loaded_environments(vms, capsys) -> None:
    vm = vms["vm02"]
    for address in vm.all_ips():
        res = ssh.ssh(ip_addr=address, command=["hostname"], username="root", tries=2, show_output=False)
        assert res == (0, b"vm02\n", b"")
    ssh.wait_for_ssh(vm.ip(), host_name="vm02", connect_timeout=30)
    assert ssh.ssh(vm.ip(), ["echo", "$((1+1))"]).out == b"2\n"
    assert "2" in capsys.readouterr().out


def test_lago_ssh_to_an_address_without_ssh_times_out() -> None:
    probe = socket.socket()
    probe.settimeout(2)
    listening = probe.connect_ex(("127.0.0.1", 22)) == 0
    probe.close()
    if listening:
        # Some sshd answers on this host: lago.ssh talks to it, and it refuses lago's key.
        assert ssh.ssh("127.0.0.1", ["true"], tries=1, password=None, show_output=False).code != 0
    else:
        with pytest.raises(ssh.LagoSSHTimeoutException, match="127.0.0.1"):
            ssh.ssh("127.0.0.1", ["true"], tries=2, show_output=False)
    assert issubclass(ssh.LagoSSHTimeoutException, utils.LagoException)


def test_get_ssh_client_is_paramikos_or_says_why_not(vms) -> None:
    try:
        import paramiko  # noqa: F401
    except ImportError:
        with pytest.raises(utils.LagoException, match="paramiko is not installed"):
            ssh.get_ssh_client(vms["vm01"].ip())
        return
    client = ssh.get_ssh_client(vms["vm01"].ip(), ssh_tries=5)
    _, out, _ = client.exec_command("hostname")
    assert out.read() == b"vm01\n"
    client.close()


def test_the_sdk_forwards_to_its_prefix(lab) -> None:
    env, home, _ = lab
    assert env.virt_env.get_vm("vm01").name() == "vm01"
    assert sorted(env.virt_env.get_vms()) == ["vm01", "vm02"]
    assert list(env.virt_env.get_vms(["vm02"])) == ["vm02"]
    with pytest.raises(utils.LagoUserException, match="do not exist"):
        env.virt_env.get_vms(["nope"])
    assert env.virt_env.get_net().name() == "front"
    assert env.virt_env.get_net("back").gw() == "192.168.230.1"
    assert sorted(env.virt_env.get_nets()) == ["back", "front"]
    paths = env._prefix.paths
    assert paths.prefix_path() == str(home / "work" / "default")
    assert Path(paths.ssh_id_rsa()).is_file()
    assert paths.virt("env").endswith("/virt/env")
    assert env.get_paths().prefixed("uuid").endswith("/default/uuid")
    assert sorted(env._pprefix.get_vms()) == ["vm01", "vm02"]
    assert env._workdir.path == str(home / "work")
    with pytest.raises(AttributeError):
        env._pprefix.paths  # only exposed methods go through the proxy
    with pytest.raises(AttributeError):
        env.no_such_member
    again = sdk.load_env(home / "work")
    assert again is not env and again._prefix is not env._prefix and again._pprefix is not env._pprefix
    assert {n: v.state() for n, v in again.get_vms().items()} == {"vm01": "running", "vm02": "running"}


def test_vm_members(vms, tmp_path: Path) -> None:
    vm = vms["vm01"]
    assert isinstance(vm, VMPlugin) and type(vm).__name__ == "DefaultVM"
    assert vm.mgmt_name == "front"
    assert vm.mgmt_net.spec["dns_domain_name"] == "py.test"
    assert vm.mgmt_net.resolve("vm01") == vm.ip()
    assert vm.spec["metadata"] == vm.metadata == {"role": "web", "deploy-scripts": []}
    assert vm.disks[0]["name"] == "root"
    assert [n["net"] for n in vm.nics()] == vm.nets() == ["front", "back"]
    assert vm.vm_type == "default" and vm.groups == ["web"]
    assert vm.root_password() and vm.distro() == "lago-tiny"
    assert vm.iscsi_name() == "iqn.2014-07.org.lago:vm01"
    assert isinstance(vm.cpu_model, str) and vm.cpu_model
    assert vm.cpu_vendor in ("Intel", "AMD", "generic") or vm.cpu_vendor
    assert vm.ssh_reachable(tries=2) and vm.running() and vm.state() == "running"
    # tiny has no guest agent.
    assert not vm.has_guest_agent()
    with pytest.raises(RuntimeError, match="guest agent"):
        vm.guest_agent()
    listing = vm.export_disks(standalone=True, dst_dir=str(tmp_path), collect_only=True)
    assert list(listing) == ["vm01"] and listing["vm01"][0].endswith("vm01_root.qcow2")
    with pytest.raises(ExtractPathNoPathError):
        vm.extract_paths([("/nothing/here", str(tmp_path / "x"))], ignore_nopath=False)
    vm.extract_paths([("/nothing/here", str(tmp_path / "x"))], ignore_nopath=True)


def test_services_are_the_originals_plugins(vms) -> None:
    vm = vms["vm02"]
    syslogd = vm.service("syslogd")
    assert isinstance(syslogd, service_plugins.ServicePlugin)
    assert type(syslogd).BIN_PATH == "/sbin/service" and type(syslogd).is_supported(vm)
    assert syslogd.state() == service_plugins.ServiceState.ACTIVE and syslogd.alive() and syslogd.exists()
    assert not syslogd._request_stop()
    assert syslogd.state() == service_plugins.ServiceState.INACTIVE
    assert not syslogd._request_start()
    assert syslogd.alive()
    syslogd.stop()
    assert not syslogd.alive()
    syslogd.start()
    assert syslogd.alive()
    missing = vm.service("nope")
    assert missing.state() == service_plugins.ServiceState.MISSING and not missing.exists()
    with pytest.raises(RuntimeError, match="not present"):
        missing.start()


def test_networks_go_down_and_up(lab) -> None:
    env, _, _ = lab
    back = env.get_nets()["back"]
    vm01 = env.get_vms()["vm01"]
    assert back.alive()
    back.stop()
    assert not back.alive()
    assert vm01.ssh(["ping", "-c", "1", "-W", "2", "192.168.230.20"], show_output=False)
    back.start()
    assert back.alive()
    assert any(not vm01.ssh(["ping", "-c", "1", "-W", "2", "192.168.230.20"], show_output=False) for _ in range(5))


def test_a_running_workdir_can_be_copied(lab, tmp_path: Path) -> None:
    _, home, _ = lab
    # The original's own test fixture copies the workdir when its tests end.
    shutil.copytree(home / "work", tmp_path / "copy", ignore=shutil.ignore_patterns("*images*"))
    assert (tmp_path / "copy" / "default" / "virt" / "env").is_file()
    with tarfile.open(tmp_path / "w.tar", "w") as tar:
        tar.add(home / "work" / "default" / "logs", arcname="logs")
    sockets = [p for p in (home / "work").rglob("*") if p.is_socket()]
    assert sockets == []


def test_a_stopped_vm_raises_the_originals_errors(vms) -> None:
    vm = vms["vm02"]
    vm.stop()
    try:
        assert vm.state() == "down" and not vm.running()
        assert not vm.ssh_reachable()
        with pytest.raises(LagoVMNotRunningError):
            vm.ssh(["true"])
        with pytest.raises(RuntimeError):
            vm.ssh(["true"])
        with pytest.raises(LagoVMNotRunningError):
            vm.service("syslogd")
    finally:
        vm.start()
    assert vm.ssh(["hostname"], show_output=False).out == b"vm02\n"


def test_workdir_errors_are_the_originals(lab, tmp_path: Path) -> None:
    _, home, _ = lab
    with pytest.raises(PrefixAlreadyExists) as raised:
        sdk.init(home / "LagoInitFile", workdir=home / "work")
    # Also the original's `Workdir.add_prefix` error, a RuntimeError and a LagoUserError.
    assert isinstance(raised.value, LagoPrefixAlreadyExistsError)
    assert isinstance(raised.value, WorkdirError) and isinstance(raised.value, RuntimeError)
    assert isinstance(raised.value, lago.LagoUserError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MalformedWorkdir):
        sdk.load_env(tmp_path / "empty")
    with pytest.raises(PrefixNotFound):
        sdk.SDK(str(home / "work"), "no-such-prefix")
