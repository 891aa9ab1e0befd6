"""The Python SDK on real `tiny` VMs (TCG): the original's API, as its users call it."""

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import lago
from lago import sdk

from conftest import LAB_INIT, processes_naming
from lago.plugins.vm import ExtractPathNoPathError

# The documentation's example (spec §2.3), with `tiny` in place of `el7.3-base`.
DOC_INIT = """\
domains:
  vm01:
    memory: 1024
    nics:
      - net: lago
    disks:
      - template_name: tiny
        type: template
        name: root
        dev: sda
        format: qcow2
nets:
  lago:
    type: nat
    dhcp:
      start: 100
      end: 254
"""



def test_the_documented_example(tmp_path: Path) -> None:
    config = tmp_path / "el7-init.yaml"
    config.write_text(DOC_INIT)
    env = sdk.init(config=str(config),
                   workdir=str(tmp_path / "my_test_env"),
                   logfile=str(tmp_path / "lago.log"),
                   loglevel=logging.DEBUG)
    try:
        env.start()
        vm = env.get_vms()["vm01"]
        res = vm.ssh(["hostname", "-f"])
        # As the example prints it (text), and as the last original's suites read it (bytes).
        assert repr(res) == "CommandStatus(code=0, out='vm01.lago.local\\n', err='')"
        assert res == sdk.CommandStatus(code=0, out="vm01.lago.local\n", err="")
        assert res.out == "vm01.lago.local\n" and str.strip(res.out) == "vm01.lago.local" and "lago" in res.out
        assert res.out.splitlines() == ["vm01.lago.local"] and res.err == ""
        assert res == sdk.CommandStatus(code=0, out=b"vm01.lago.local\n", err=b"")
        assert res.out.decode("utf-8") == res.out.decode() == res.out.decode("utf-8", "replace") == "vm01.lago.local\n"
        assert res.out.decode("utf-8").strip() == "vm01.lago.local" and res.err.decode("utf-8") == ""
        assert bytes(res.out) == b"vm01.lago.local\n" and res.out.strip() == b"vm01.lago.local"
        code, out, err = res
        assert not res and code == 0 and res[1] is out and err == b""
        res = vm.interactive_ssh(["true"])
        assert res.code == 0
    finally:
        env.destroy()
    assert not (tmp_path / "my_test_env").exists()


def test_extract_paths_dead_reads_the_disk_of_a_vm_never_started(tmp_path: Path) -> None:
    config = tmp_path / "LagoInitFile"
    config.write_text(DOC_INIT)
    env = sdk.init(config=str(config), workdir=str(tmp_path / "w"))
    try:
        vm = env.get_vms()["vm01"]
        assert not vm.running()
        out = tmp_path / "out"
        vm.extract_paths_dead([("/etc/os-release", out / "os-release"), ("/nope", out / "nope")], ignore_nopath=True)
        assert "ID=lago-tiny" in (out / "os-release").read_text()
        assert not (out / "nope").exists()
        with pytest.raises(ExtractPathNoPathError, match="/nope"):
            vm.extract_paths_dead([("/nope", out / "nope")], False)
    finally:
        env.destroy()


def test_vms_and_nets_match_the_init_file(lab) -> None:
    env, _, _ = lab
    vms, nets = env.get_vms(), env.get_nets()
    assert sorted(vms) == ["vm01", "vm02"]
    assert sorted(nets) == ["back", "front"]
    vm01, vm02 = vms["vm01"], vms["vm02"]
    assert vm01.name() == "vm01"
    assert vm01.nets() == ["front", "back"]
    # As the original kept it: the written metadata, with the copied deploy scripts (none here).
    assert vm01.metadata == {"role": "web", "deploy-scripts": []}
    assert vm02.groups == ["db", "backup"]
    assert vm01.mgmt_name == "front" and vm01.mgmt_net.name() == "front"
    assert vm01.vm_type == "default"
    assert vm01.distro() == "lago-tiny"
    assert vm02.ips_in_net("back") == ["192.168.230.20"]
    assert vm01.ip() in vm01.all_ips() and len(vm01.all_ips()) == 2
    assert nets["back"].gw() == "192.168.230.1"
    assert nets["front"].is_management() and not nets["back"].is_management()
    assert nets["front"].resolve("vm02") == vm02.ip()
    assert nets["back"].mtu() == 1500
    paths = env.get_paths()
    assert Path(paths.ssh_id_rsa()).is_file()
    assert len(paths.uuid()) == 32
    assert paths.images("vm01_root.qcow2").endswith("/images/vm01_root.qcow2")


def test_names_addresses_and_pings(lab) -> None:
    env, _, _ = lab
    vm01 = env.get_vms()["vm01"]
    assert vm01.ssh(["hostname", "-f"]).out == b"vm01.py.test\n"
    assert vm01.ssh(["ping", "-c", "1", "-W", "5", "vm02"]).code == 0
    assert vm01.ssh(["ping", "-c", "1", "-W", "5", "vm02.py.test"]).code == 0
    assert vm01.ssh(["exit", "3"]).code == 3
    status = vm01.ssh(["echo out; echo err >&2"])
    assert (status.out, status.err) == (b"out\n", b"err\n")


def _pings(vm, to: str) -> bool:
    return vm.ssh(["ping", "-c", "1", "-W", "2", to]).code == 0


def test_faults_cut_partition_and_degrade(lab) -> None:
    env, _, _ = lab
    vm01, vm02 = env.get_vms()["vm01"], env.get_vms()["vm02"]
    assert _pings(vm01, "192.168.230.20")
    # A cut link on one network; the other still carries traffic.
    vm02.cut_link(["back"])
    assert vm02.ssh(["cat", "/sys/class/net/eth1/carrier"]).out == b"0\n"
    assert not _pings(vm01, "192.168.230.20")
    assert _pings(vm01, "vm02")
    vm02.restore_link()
    assert any(_pings(vm01, "192.168.230.20") for _ in range(5))
    # A partition for the `with` block only.
    with env.partitioned("front", [["vm01"], ["vm02"]]):
        assert not _pings(vm01, "vm02")
        assert _pings(vm01, "192.168.230.20")
    assert any(_pings(vm01, "vm02") for _ in range(5))
    # A degraded link: 400 ms more per round trip.
    vm02.degrade("front", delay=400)
    out = vm01.ssh(["ping", "-c", "3", "-q", "vm02"]).out.decode()
    # The minimum: one late echo on a busy host moves an average, not the delay of every frame.
    fastest = float(out.strip().splitlines()[-1].split("=")[1].split("/")[0])
    assert 400 <= fastest <= 480, out
    vm02.restore_link(["front"])
    with pytest.raises(lago.LagoUserError, match='Unknown network "nope"'):
        vm02.degrade("nope", delay=1)


def test_forward_reaches_a_port_of_the_vm_from_the_host(lab) -> None:
    env, _, _ = lab
    vm = env.get_vms()["vm01"]
    host, port = vm.forward(22)
    assert host == "127.0.0.1"
    assert vm.forward(22) == (host, port), "asked twice: the same forward"
    assert vm.forwards() == {22: (host, port)}
    with socket.create_connection((host, port), timeout=20) as s:
        s.settimeout(20)
        assert s.recv(64).startswith(b"SSH-2.0-"), "the VM's SSH server answers through the forward"
    vm.unforward(22)
    assert vm.forwards() == {}
    with pytest.raises(lago.LagoUserError, match="No port of the host forwards to port 22"):
        vm.unforward(22)


def test_load_env_of_a_running_workdir(lab) -> None:
    _, home, _ = lab
    again = sdk.load_env(home / "work")
    assert {name: vm.state() for name, vm in again.get_vms().items()} == {"vm01": "running", "vm02": "running"}
    assert again.get_vms()["vm02"].running()


def test_the_log_file_has_lagos_lines_and_the_callers(lab) -> None:
    _, _, logfile = lab
    text = logfile.read_text()
    assert "a line the test logged" in text
    assert "::lago.progress::INFO::Start Prefix: Success" in text
    assert "::lago.host.process::DEBUG::" in text, "lago's debug records reach the file at DEBUG"


def test_ansible_inventory_temp_file_drives_ansible(lab) -> None:
    env, _, _ = lab
    with env.ansible_inventory_temp_file(keys=["groups"]) as inventory:
        text = Path(inventory.name).read_text()
        assert "[web]" in text and "[backup]" in text
        out = subprocess.run(["ansible", "-i", inventory.name, "all", "-m", "raw", "-a", "hostname"],
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "vm01" in out.stdout and "vm02" in out.stdout


def test_snapshot_and_revert_restore_a_file(lab) -> None:
    env, _, _ = lab
    vm = env.get_vms()["vm01"]
    vm.ssh(["echo before > /root/f"])
    env.snapshot("py1")
    vm.ssh(["echo after > /root/f"])
    env.revert("py1")
    assert vm.ssh(["cat", "/root/f"]).out == b"before\n"
    assert "py1" in env.snapshots()["vm01"]
    # One VM only.
    vm.create_snapshot("py2")
    vm.ssh(["echo later > /root/f"])
    vm.revert_snapshot("py2")
    assert vm.ssh(["cat", "/root/f"]).out == b"before\n"
    assert "py2" not in env.snapshots()["vm02"]


def test_two_threads_drive_two_vms_at_once(lab) -> None:
    env, _, _ = lab
    vms = env.get_vms()
    done = {}

    def sleep_in(name: str) -> None:
        done[name] = vms[name].ssh(["sleep", "2"]).code

    threads = [threading.Thread(target=sleep_in, args=(n,)) for n in ("vm01", "vm02")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done == {"vm01": 0, "vm02": 0}


def test_calls_run_at_once_the_gil_is_released(lab) -> None:
    env, _, _ = lab
    vm = env.get_vms()["vm01"]
    # Each command marks that it started, then waits (at most 30 s) for the other's mark: run one
    # after the other (the GIL held while lago waits), the first would never see the second's.
    vm.ssh(["rm", "-f", "/tmp/gil-a", "/tmp/gil-b"])
    wait = "touch /tmp/gil-{me}; i=0; until [ -e /tmp/gil-{other} ]; do i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.1; done"
    codes = {}

    def meet(me: str, other: str) -> None:
        codes[me] = vm.ssh([wait.format(me=me, other=other)]).code

    threads = [threading.Thread(target=meet, args=p) for p in (("a", "b"), ("b", "a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == {"a": 0, "b": 0}


def test_copies_scripts_services_and_artifacts(lab, tmp_path: Path) -> None:
    env, _, _ = lab
    vm = env.get_vms()["vm01"]
    local = tmp_path / "hello.txt"
    local.write_text("hello\n")
    vm.copy_to(local, "/root/hello.txt")
    vm.copy_from("/root/hello.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "hello\n"
    with pytest.raises(ExtractPathNoPathError, match="does not exist"):
        vm.copy_from("/nope", tmp_path / "nope")
    vm.copy_from("/nope", tmp_path / "nope", propagate_fail=False)
    script = tmp_path / "s.sh"
    script.write_text("echo from-script $(hostname)\n")
    assert vm.ssh_script(script).out == b"from-script vm01\n"
    vm.extract_paths([("/etc/hostname", tmp_path / "hostname"), ("/nope", tmp_path / "x")], ignore_nopath=True)
    assert (tmp_path / "hostname").read_text().strip() == "vm01"
    vm.collect_artifacts(tmp_path / "artifacts", ignore_nopath=True)
    assert (tmp_path / "artifacts" / "_etc_hostname").read_text().strip() == "vm01"
    assert (tmp_path / "artifacts" / "_var_log").is_dir()
    env.collect_artifacts(tmp_path / "all")
    assert (tmp_path / "all" / "vm01" / "_etc_hostname").is_file()
    assert vm.ssh_reachable()
    vm.wait_for_ssh()
    syslogd = vm.service("syslogd")
    assert syslogd.exists() and syslogd.alive()
    assert not vm.service("nope").exists()


def test_bad_input_raises_lago_user_error_with_the_key_path(tmp_path: Path) -> None:
    config = tmp_path / "LagoInitFile"
    config.write_text("domains:\n  vm01:\n    nics: [{net: lgo}]\nnets:\n  lago: {}\n")
    with pytest.raises(lago.LagoUserError) as raised:
        sdk.init(config, workdir=tmp_path / "w")
    assert 'domains.vm01.nics[0].net: unknown network "lgo" (known: lago)' in str(raised.value)
    assert not (tmp_path / "w").exists()
    with pytest.raises(lago.LagoUserError, match="Unknown init option"):
        sdk.init(config, workdir=tmp_path / "w", template_repo_pth="x")
    with pytest.raises(lago.LagoUserError, match="Unable to find workdir|not a valid workdir"):
        sdk.load_env(tmp_path / "nothing-here")
    assert issubclass(lago.LagoUserError, lago.LagoError)


def test_ctrl_c_interrupts_start(tmp_path: Path, lago_config) -> None:
    """KeyboardInterrupt during start(): the VMs it started are stopped again."""
    config = tmp_path / "LagoInitFile"
    config.write_text(LAB_INIT)
    program = textwrap.dedent(f"""
        import sys
        from lago import sdk
        env = sdk.init({str(config)!r}, workdir={str(tmp_path / "work")!r})
        print("initialized", flush=True)
        try:
            env.start()
        except KeyboardInterrupt:
            states = sorted(vm.state() for vm in env.get_vms().values())
            print("interrupted", states, flush=True)
            env.destroy()
            sys.exit(7)
        print("not interrupted", flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, **lago_config})
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "initialized"
    time.sleep(3)
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 7, out
    assert out.strip() == "interrupted ['down', 'down']"
    assert not processes_naming(tmp_path / "work")
