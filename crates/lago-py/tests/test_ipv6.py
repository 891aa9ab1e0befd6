"""IPv6 networks through the SDK (lago's own: `vm.ip6()`, `net.gw6()`, `net.ipv6_prefix()`), on
an environment that is initialized, not started: the addresses are the plan's."""

from pathlib import Path

import pytest

import lago
from lago import sdk

INIT = """\
domains:
  vm01:
    nics: [{net: lan}, {net: v6}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
  vm02:
    nics: [{net: v6m, ip6: '::9'}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
nets:
  lan: {management: true, ipv6: 'fd8f:1:2::/64'}
  v6: {ipv6: 'fd8f:1:3::/64', ipv4: false, gw6: '::fe'}
  v6m: {management: true, ipv6: auto, ipv4: false}
"""


def test_addresses_gateways_and_prefixes(tmp_path: Path) -> None:
    config = tmp_path / "LagoInitFile"
    config.write_text(INIT)
    env = sdk.init(config, workdir=tmp_path / "w")
    try:
        vms, nets = env.get_vms(), env.get_nets()
        vm01, vm02 = vms["vm01"], vms["vm02"]
        # Dual-stack management network: both addresses, the IPv4 one's host part.
        assert (vm01.ip(), vm01.ip6()) == ("192.168.200.2", "fd8f:1:2::2")
        assert vm01.all_ips() == ["192.168.200.2", "fd8f:1:2::2", "fd8f:1:3::2"]
        assert vm01.ips_in_net("v6") == ["fd8f:1:3::2"]
        assert (nets["lan"].gw(), nets["lan"].gw6(), nets["lan"].ipv6_prefix()) == (
            "192.168.200.1", "fd8f:1:2::1", "fd8f:1:2::/64")
        # IPv6-only: no IPv4 gateway nor address.
        assert (nets["v6"].gw(), nets["v6"].gw6(), nets["v6"].ipv6_prefix()) == (None, "fd8f:1:3::fe", "fd8f:1:3::/64")
        # `auto`: a unique local /64 derived at init; a host part written takes it.
        prefix = nets["v6m"].ipv6_prefix()
        assert prefix.startswith("fd") and prefix.endswith("::/64"), prefix
        assert vm02.ip() is None and vm02.ip6() == prefix[:-len("/64")] + "9"
        assert nets["v6m"].resolve("vm02") is None
        # The record of a NIC holds its `ip6`.
        assert env.get_vms()["vm01"].nics()[0]["ip6"] == "fd8f:1:2::2"
    finally:
        env.destroy()


def test_ipv6_mistakes_raise_lago_user_error_with_the_key_path(tmp_path: Path) -> None:
    config = tmp_path / "LagoInitFile"
    config.write_text("domains:\n  vm01:\n    nics: [{net: lan, ip6: 'fd8f:1:3::5'}]\n"
                      "nets:\n  lan: {ipv6: 'fd8f:1:2::/64'}\n")
    with pytest.raises(lago.LagoUserError) as raised:
        sdk.init(config, workdir=tmp_path / "w")
    assert "domains.vm01.nics[0].ip6: fd8f:1:3::5 is outside the prefix fd8f:1:2::/64" in str(raised.value)
    assert not (tmp_path / "w").exists()
