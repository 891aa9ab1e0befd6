"""The original's ``lago.virt``: :class:`VirtEnv`, the VMs and networks of a prefix
(``env.virt_env``, ``prefix.virt_env``): ``get_vms()``, ``get_vm(name)``, ``get_nets()``,
``get_net(name=None)``."""

import os
from typing import Any, Dict, List, Optional

from . import utils
from . import ssh as lago_ssh
from .plugins import PLUGIN_ENTRY_POINTS, load_plugins
from .vm import DefaultVM


class LagoUnknownVMTypeError(utils.LagoUserException):
    """A VM type no plugin provides (lago uses the default VM for them instead)."""

    def __init__(self, vm_type_name: str, vm_types: Any) -> None:
        super().__init__("Unknown VM type: {0}, available types: {1}, maybe you need to install lago plugin".format(
            vm_type_name, vm_types))


class VirtEnv:
    """The VMs and networks of ``prefix`` (a ``lago.prefix.Prefix``). Each VM is an instance of
    the class its ``vm-type`` names (``lago.plugins.vm`` entry points)."""

    def __init__(self, prefix: Any) -> None:
        self.prefix = prefix
        native = prefix._native
        self._nets: Dict[str, Any] = {name: native.net(name) for name in native.net_names()}
        vm_types = load_plugins(PLUGIN_ENTRY_POINTS["vm"], instantiate=False)
        self._vms: Dict[str, Any] = {}
        for name in native.vm_names():
            spec = native.vm(name).spec
            # A VM type no plugin provides is the default VM (its name stays in the spec), as
            # init files written for plugins (`vm-type: ovirt-host`) load without them.
            vm_class = vm_types.get(spec.get("vm-type", "default")) or vm_types.get("default") or DefaultVM
            vm = vm_class(self, spec)
            self._vms[name] = vm
            for address in native.vm(name).all_ips():
                lago_ssh.register_vm(address, vm)

    def _native_vm(self, name: str) -> Any:
        return self.prefix._native.vm(name)

    def get_vms(self, vm_names: Optional[List[str]] = None) -> Dict[str, Any]:
        """``{name: VM}``: every VM, or those of ``vm_names`` (an unknown name raises
        ``LagoUserException``)."""
        if not vm_names:
            return self._vms.copy()
        missing = [n for n in vm_names if n not in self._vms]
        if missing:
            raise utils.LagoUserException("The following vms do not exist: \n{}".format("\n".join(missing)))
        return {n: self._vms[n] for n in vm_names}

    def get_vm(self, name: str) -> Any:
        return self._vms[name]

    def get_nets(self) -> Dict[str, Any]:
        return self._nets.copy()

    def get_net(self, name: Optional[str] = None) -> Any:
        """Network ``name``; without a name, the management network."""
        if name:
            return self._nets.get(name)
        mgmt = [net for net in self._nets.values() if net.is_management()]
        return (mgmt or list(self._nets.values())).pop()

    def virt_path(self, *args: str) -> str:
        return self.prefix.paths.virt(*args)

    def start(self, vm_names: Optional[List[str]] = None, from_snapshot: Optional[str] = None,
              boot: bool = False) -> None:
        self.prefix._native.start(vm_names, from_snapshot, boot)

    def stop(self, vm_names: Optional[List[str]] = None) -> None:
        self.prefix._native.stop(vm_names)

    def shutdown(self, vm_names: Optional[List[str]] = None, reboot: bool = False) -> None:
        self.prefix._native.shutdown(vm_names, reboot)

    def create_snapshots(self, name: str) -> None:
        self.prefix._native.snapshot(name)

    def revert_snapshots(self, name: str) -> None:
        self.prefix._native.revert(name)

    def get_snapshots(self, domains: Optional[List[str]] = None) -> Dict[str, Any]:
        snaps = self.prefix._native.snapshots()
        return {k: v for k, v in snaps.items() if not domains or k in domains}

    def export_vms(self, vms_names: Optional[List[str]] = None, standalone: bool = False, export_dir: str = ".",
                   compress: bool = False, init_file_name: str = "LagoInitFile", out_format: Any = None,
                   collect_only: bool = False, with_threads: bool = True) -> Any:
        return self.prefix._native.export_vms(vms_names, standalone, os.fspath(export_dir), compress,
                                              init_file_name, collect_only, with_threads)


__all__ = ["VirtEnv", "LagoUnknownVMTypeError"]
