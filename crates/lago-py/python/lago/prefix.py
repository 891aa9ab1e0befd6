"""The original's ``lago.prefix``: :class:`Prefix`, one environment's directory, for CLI plugins
(``prefix=`` of ``lago.utils.in_prefix``) and the SDK (``env._prefix``)."""

import collections
from typing import Any, Dict, List, Optional

from . import sdk_utils
from ._lago import Env, resolve_prefix

#: Where a prefix was found: its path and its workdir (``None`` for a prefix given by path).
Found = collections.namedtuple("Found", ("path", "workdir"))


def resolve(prefix_path: Optional[str] = None, workdir_path: Optional[str] = None,
            prefix_name: Optional[str] = None) -> Found:
    """The prefix the CLI's global options name (as ``lago`` finds it)."""
    path, workdir = resolve_prefix(prefix_path, workdir_path, prefix_name)
    return Found(str(path), str(workdir) if workdir is not None else None)


class Prefix:
    """The environment in directory ``prefix``: ``paths``, ``virt_env``, and the operations the
    original's SDK exposed (``start``, ``stop``, ``get_vms``, ``get_nets``, ``get_paths``...)."""

    def __init__(self, prefix: str, *args: Any, _native: Any = None, **kwargs: Any) -> None:
        self._native = _native if _native is not None else Env(prefix_path=prefix)
        self._virt_env: Any = None

    @property
    def paths(self) -> Any:
        return self._native.get_paths()

    @property
    def virt_env(self) -> Any:
        if self._virt_env is None:
            from .virt import VirtEnv
            self._virt_env = VirtEnv(self)
        return self._virt_env

    @sdk_utils.expose
    def get_vms(self) -> Dict[str, Any]:
        return self.virt_env.get_vms()

    @sdk_utils.expose
    def get_nets(self) -> Dict[str, Any]:
        return self.virt_env.get_nets()

    @sdk_utils.expose
    def get_paths(self) -> Any:
        return self.paths

    @sdk_utils.expose
    def start(self, vm_names: Optional[List[str]] = None, from_snapshot: Optional[str] = None,
              boot: bool = False) -> None:
        """Starts the VMs (all by default) and waits for SSH. lago's own: ``from_snapshot`` brings
        the stopped environment up in the state of that live snapshot instead of booting it;
        ``boot`` boots even when ``[start] resume`` names one."""
        self._native.start(vm_names, from_snapshot, boot)

    @sdk_utils.expose
    def stop(self, vm_names: Optional[List[str]] = None) -> None:
        self._native.stop(vm_names)

    @sdk_utils.expose
    def shutdown(self, vm_names: Optional[List[str]] = None, reboot: bool = False) -> None:
        self._native.shutdown(vm_names, reboot)

    @sdk_utils.expose
    def collect_artifacts(self, output_dir: str, ignore_nopath: bool = False) -> None:
        self._native.collect_artifacts(output_dir, ignore_nopath)

    @sdk_utils.expose
    def deploy(self) -> None:
        self._native.deploy()

    @sdk_utils.expose
    def export_vms(self, *args: Any, **kwargs: Any) -> Any:
        return self.virt_env.export_vms(*args, **kwargs)

    def create_snapshots(self, name: str) -> None:
        self._native.snapshot(name)

    def revert_snapshots(self, name: str) -> None:
        self._native.revert(name)

    def get_snapshots(self) -> Dict[str, Any]:
        return self._native.snapshots()

    def destroy(self) -> None:
        self._native.destroy()

    def __repr__(self) -> str:
        return "<lago prefix %s>" % self._native.prefix_path


__all__ = ["Prefix", "resolve", "Found"]
