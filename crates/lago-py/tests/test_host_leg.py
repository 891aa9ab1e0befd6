"""`lago.ssh.ssh(ip_addr=vm.ip(), ...)` where the environment's network has its host leg, as
suites written for the original call it: in a network namespace of the test's own (the host leg
puts the gateway on a TAP interface of the host), with `host_leg = on`."""

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

INIT = """\
domains:
  vm01:
    memory: 256
    nics: [{net: lan}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
nets:
  lan: {type: nat, management: true}
"""

SCRIPT = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from lago import sdk, ssh

    home = Path(sys.argv[1])
    env = sdk.init(home / "LagoInitFile", workdir=home / "work")
    try:
        env.start()
        vm = env.get_vms()["vm01"]
        print("ip", vm.ip())
        res = ssh.ssh(ip_addr=vm.ip(), command=["hostname"], show_output=False)
        print("loaded", res.code, res.out.decode().strip())
        # A process that did not load the environment: straight to the address, port 22, with
        # the environment's key.
        ssh._VMS.clear()
        key = next((home / "work").glob("*/id_rsa"))
        res = ssh.ssh(vm.ip(), ["hostname"], ssh_key=str(key), tries=5, show_output=False)
        print("direct", res.code, res.out.decode().strip())
        print("inventory", vm.ssh(["true"]).code)
    finally:
        env.destroy()
""")


@pytest.fixture
def netns():
    name = f"lago-py-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def test_lago_ssh_reaches_the_vm_address_through_the_host_leg(netns, tmp_path: Path, lago_config) -> None:
    (tmp_path / "LagoInitFile").write_text(INIT)
    (tmp_path / "check.py").write_text(SCRIPT)
    env = dict(os.environ, LAGO_HOST_LEG="on", LAGO_LEASE_DIR=str(tmp_path / "leases"))
    run = subprocess.run(["ip", "netns", "exec", netns, sys.executable, str(tmp_path / "check.py"), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
    assert lines["ip"] == "192.168.200.2", run.stdout
    assert lines["loaded"] == "0 vm01", run.stdout
    assert lines["direct"] == "0 vm01", run.stdout
    assert lines["inventory"] == "0", run.stdout
    # Nothing left in the namespace: the TAP went with the environment.
    links = subprocess.run(["ip", "-n", netns, "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert links.split()[0] == "lo" and len(links.strip().splitlines()) == 1, links
