"""The original's VM plugins (``lago.plugins.vm``): :class:`VMPlugin` is the class of the SDK's
VMs (``env.get_vms()``); a domain's ``vm-type: NAME`` makes its VM an instance of the class that
entry point ``NAME`` of group ``lago.plugins.vm`` names (``default`` is ``lago.vm.DefaultVM``).
A subclass adds methods, or changes them and calls ``super()``.

Every operation is lago's Rust library's (``self._native``); this class gives them the
original's names, arguments and return shapes: ``ssh(command, ...)`` joins a list with spaces for
the guest's shell and returns a ``lago.utils.CommandStatus``, true when the command failed, whose
``out`` and ``err`` are text that also decodes as the original's bytes
(``lago.utils.CommandOutput``).
"""

import copy
import logging
import os
import sys
from abc import ABCMeta
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .. import utils
from . import PLUGIN_ENTRY_POINTS, NoSuchPluginError, Plugin, load_plugins

LOGGER = logging.getLogger(__name__)


class VMError(utils.LagoException):
    """A VM operation failed."""


class ExtractPathError(VMError):
    """Paths could not be extracted from a VM."""


class ExtractPathNoPathError(VMError):
    """A path to extract is not in the VM."""


class LagoVMNotRunningError(utils.LagoUserException, RuntimeError):
    """The VM does not run (also a ``RuntimeError``, which the original's ``ssh`` raised)."""


class LagoCopyFilesToVMError(utils.LagoUserException):
    """Copying files into a VM failed."""


class LagoCopyFilesFromVMError(utils.LagoUserException):
    """Copying files out of a VM failed."""


class LagoVMDoesNotExistError(utils.LagoException):
    """No VM of that name."""


class LagoFailedToGetVMStateError(utils.LagoException):
    """The state of a VM could not be had."""


class LagoWaitTimeoutError(VMError, TimeoutError):
    """lago's own: a wait helper's time ran out (``vm.wait_for``, ``wait_for_port``,
    ``wait_for_unit``, ``wait_for_file``, ``wait_for_console``). Its message says what the
    last check saw: the command's exit code and output, the ports that listened, the service's
    state, the console's last lines. Also a ``TimeoutError``."""


def check_running(func: Any) -> Any:
    """Decorator of VM methods: raises ``LagoVMNotRunningError`` when the VM does not run."""
    import functools

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.running():
            raise LagoVMNotRunningError("VM %s is not running" % self.name())
        return func(self, *args, **kwargs)
    return wrapper


def _echo(result: "utils.CommandStatus") -> None:
    for data, stream in ((result.out, sys.stdout), (result.err, sys.stderr)):
        if data:
            stream.write(data)
            stream.flush()


class VMPlugin(Plugin, metaclass=ABCMeta):
    """A VM of an environment (a domain of the init file). ``virt_env`` is its environment
    (``lago.virt.VirtEnv``); ``spec`` its record."""

    def __init__(self, env: Any, spec: Dict[str, Any]) -> None:
        self.virt_env = env
        self._spec = self._normalize_spec(dict(spec))
        self._native = env._native_vm(self._spec["name"])
        self._service_class: Any = None
        self.service_providers = load_plugins(PLUGIN_ENTRY_POINTS["vm-service"], instantiate=False)

    # --- what the VM is -------------------------------------------------------------------

    def name(self) -> str:
        return str(self._spec["name"])

    def iscsi_name(self) -> str:
        return "iqn.2014-07.org.lago:%s" % self.name()

    @property
    def spec(self) -> Dict[str, Any]:
        return copy.deepcopy(self._spec)

    @property
    def metadata(self) -> Dict[str, Any]:
        return dict(self._spec.get("metadata", {}))

    @property
    def disks(self) -> List[Dict[str, Any]]:
        return list(self._spec.get("disks", []))

    @property
    def mgmt_name(self) -> Optional[str]:
        """The name of the management network."""
        return self._spec.get("mgmt_net")

    @property
    def mgmt_net(self) -> Any:
        """The management network (an object with ``spec``, ``resolve()``, ``gw()``...)."""
        return self.virt_env.get_net(name=self.mgmt_name)

    @property
    def vm_type(self) -> str:
        return self._spec.get("vm-type", "default")

    @property
    def groups(self) -> List[str]:
        groups = self._spec.get("groups", [])
        return [groups] if isinstance(groups, str) else list(groups)

    @property
    def cpu_model(self) -> Optional[str]:
        """The CPU model: a running VM's as its hypervisor says, else the configured one."""
        return self._native.cpu()[0]

    @property
    def cpu_vendor(self) -> str:
        """The CPU vendor (``Intel``, ``AMD``; ``generic`` when unknown)."""
        return self._native.cpu()[1]

    def ip(self) -> Optional[str]:
        return self._native.ip()

    def ip6(self) -> Optional[str]:
        """The VM's IPv6 address on its management network (lago's own; ``None`` when that
        network has no IPv6)."""
        return self._native.ip6()

    # --- lago's own: ports forwarded to the host's loopback ----------------------------------

    def forward(self, guest_port: int, host_port: Optional[int] = None) -> Tuple[str, int]:
        """Forwards ``127.0.0.1:host_port`` (a free port by default) to the running VM's TCP port
        ``guest_port``, and returns ``("127.0.0.1", port)``; a port already forwarded (the init
        file's ``forwards`` too) is returned as it is. Removed when the VM stops."""
        return self._native.forward(guest_port, host_port)

    def unforward(self, guest_port: int) -> None:
        """Removes the forward to the VM's TCP port ``guest_port``."""
        self._native.unforward(guest_port)

    def forwards(self) -> Dict[int, Tuple[str, int]]:
        """The running VM's forwarded ports: ``{guest_port: ("127.0.0.1", host_port)}``."""
        return dict(self._native.forwards())

    def all_ips(self) -> List[str]:
        return self._native.all_ips()

    def ips_in_net(self, net_name: str) -> List[str]:
        return self._native.ips_in_net(net_name)

    def nics(self) -> List[Dict[str, Any]]:
        return list(self._spec.get("nics", []))

    def nets(self) -> List[str]:
        return [nic["net"] for nic in self._spec.get("nics", [])]

    def distro(self) -> Optional[str]:
        return self._spec.get("distro") or self._template_metadata().get("distro")

    def root_password(self) -> str:
        return self._spec.get("root-password") or self._spec.get("ssh-password", "")

    # --- its life ---------------------------------------------------------------------------

    def state(self, *args: Any, **kwargs: Any) -> str:
        return self._native.state()

    def running(self, *args: Any, **kwargs: Any) -> bool:
        return self._native.running()

    def start(self, *args: Any, **kwargs: Any) -> None:
        self._native.start()

    def stop(self, *args: Any, **kwargs: Any) -> None:
        self._native.stop()

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self._native.shutdown()

    def reboot(self, *args: Any, **kwargs: Any) -> None:
        self._native.reboot()

    def create_snapshot(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._native.create_snapshot(name)

    def revert_snapshot(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._native.revert_snapshot(name)

    def export_disks(self, standalone: bool = True, dst_dir: Optional[str] = None, compress: bool = False,
                     collect_only: bool = False, with_threads: bool = True, *args: Any, **kwargs: Any) -> Dict[str, List[str]]:
        """Exports the VM's disks into ``dst_dir``: ``{vm name: [exported files]}``."""
        return self._native.export_disks(standalone, dst_dir, compress, collect_only)

    def interactive_console(self, *args: Any, **kwargs: Any) -> "utils.CommandStatus":
        """This process's terminal on the VM's serial console until Ctrl-]."""
        self._native.interactive_console()
        return utils.CommandStatus(0, b"", b"")

    # --- commands in it ---------------------------------------------------------------------

    def ssh(self, command: Union[str, Sequence[str]], data: Any = None, show_output: bool = True,
            propagate_fail: bool = True, tries: Optional[int] = None) -> "utils.CommandStatus":
        """Runs ``' '.join(command)`` in the VM's shell (globs, pipes, ``&&`` in the elements
        work, as in the original); ``data`` (str or bytes) on its standard input; with
        ``show_output`` its output goes to ``sys.stdout``/``sys.stderr`` too. The connection is
        tried ``tries`` times (``None``: ``ssh_tries``). Raises ``LagoVMNotRunningError`` (a
        ``RuntimeError``) when the VM does not run. ``propagate_fail`` is accepted for the
        original's callers."""
        data = utils._stdin(data)
        line = command if isinstance(command, str) else " ".join(command)
        result = self._native.exec_line(line, data, tries)
        if show_output:
            _echo(result)
        return result

    def run(self, argv: Sequence[str], data: Any = None) -> "utils.CommandStatus":
        """lago's own call: runs ``argv`` with each argument quoted (``["echo", "a b"]`` prints
        ``a b``), where :meth:`ssh` joins them with spaces. Prints nothing."""
        data = utils._stdin(data)
        return self._native.run(list(argv), data)

    def ssh_script(self, path: str, show_output: bool = True) -> "utils.CommandStatus":
        """Runs the local script ``path`` in the VM (``bash -s``, or ``sh -s`` without bash)."""
        result = self._native.ssh_script(os.fspath(path))
        if show_output:
            _echo(result)
        return result

    def interactive_ssh(self, command: Optional[Sequence[str]] = None) -> "utils.CommandStatus":
        """``command`` (the user's login shell by default) with this process's terminal."""
        self._check_running()
        line = None if command is None else (command if isinstance(command, str) else " ".join(command))
        return utils.CommandStatus(self._native.interactive_ssh(line), b"", b"")

    def wait_for_ssh(self) -> None:
        self._native.wait_for_ssh()

    def ssh_reachable(self, tries: Optional[int] = None, propagate_fail: bool = True) -> bool:
        """Whether the VM runs and answers SSH (``tries`` attempts a second apart, 1 by default)."""
        if not self.running():
            return False
        return self._native.ssh_reachable(tries)

    # --- waits (lago's own) -----------------------------------------------------------------
    # Each polls without a fixed sleep and raises LagoWaitTimeoutError (what it saw last) once
    # ``timeout`` seconds (default 120) have passed; LagoVMNotRunningError when the VM does not run.

    def wait_for(self, command: Union[str, Sequence[str]], timeout: Optional[float] = None) -> "utils.CommandStatus":
        """Waits until ``command`` (a line for the VM's ``sh``; a list is joined with spaces, as
        :meth:`ssh` does) exits with 0, trying it again as soon as a try fails; returns that
        try's ``CommandStatus``. A try still running when the time is up is stopped."""
        line = command if isinstance(command, str) else " ".join(command)
        return self._native.wait_for(line, timeout)

    def wait_for_port(self, port: int, timeout: Optional[float] = None) -> None:
        """Waits until a TCP socket listens on ``port`` in the VM, on any of its addresses (as the
        VM's kernel says: the service in the VM listens; the test's networks are not involved)."""
        self._native.wait_for_port(port, timeout)

    def wait_for_unit(self, name: str, timeout: Optional[float] = None) -> None:
        """Waits until service ``name`` is active, as the VM's service manager says (systemd, or
        ``/sbin/service NAME status``: the VM's ``service_provider``)."""
        self._native.wait_for_unit(name, timeout)

    def wait_for_file(self, path: str, timeout: Optional[float] = None) -> None:
        """Waits until ``path`` exists in the VM."""
        self._native.wait_for_file(path, timeout)

    def wait_for_console(self, regex: str, timeout: Optional[float] = None) -> str:
        """Waits until a line of the VM's serial console matches ``regex`` (Rust's ``regex``
        syntax, searched in each line) and returns the line. The lines printed since the VM was
        last started count, then each line as it is printed (the file is followed, not re-read);
        the line being printed counts too (a prompt)."""
        return self._native.wait_for_console(regex, timeout)

    def copy_to(self, local_path: Any, remote_path: str, recursive: bool = True) -> None:
        """Copies a local file or directory into the VM (directories always whole)."""
        self._native.copy_to(os.fspath(local_path), remote_path)

    def copy_from(self, remote_path: str, local_path: Any, recursive: bool = True, propagate_fail: bool = True) -> None:
        """Copies a file or directory out of the VM; without ``propagate_fail`` a failure is
        logged only."""
        self._native.copy_from(remote_path, os.fspath(local_path), recursive, propagate_fail)

    def extract_paths(self, paths: Sequence[Any], *args: Any, **kwargs: Any) -> None:
        """Copies ``(guest path, host path)`` pairs out of the VM; a missing guest path raises
        ``ExtractPathNoPathError`` unless ``ignore_nopath``."""
        ignore_nopath = kwargs.get("ignore_nopath", args[0] if args else False)
        self._native.extract_paths([(g, os.fspath(h)) for g, h in paths], ignore_nopath)

    def extract_paths_dead(self, paths: Sequence[Any], *args: Any, **kwargs: Any) -> None:
        """Copies ``(guest path, host path)`` pairs out of the VM's disk, without its OS
        (guestfish, read-only: meant for a stopped VM); a missing guest path raises
        ``ExtractPathNoPathError`` unless ``ignore_nopath``."""
        ignore_nopath = kwargs.get("ignore_nopath", args[0] if args else False)
        self._native.extract_paths_dead([(g, os.fspath(h)) for g, h in paths], ignore_nopath)

    def collect_artifacts(self, host_path: Any, ignore_nopath: bool = False) -> None:
        """The domain's ``artifacts`` into ``host_path`` (``/var/log`` as ``_var_log``)."""
        self._native.collect_artifacts(os.fspath(host_path), ignore_nopath)

    # --- services -----------------------------------------------------------------------

    def service(self, name: str) -> Any:
        """Service ``name`` of the VM (a ``ServicePlugin``)."""
        self._check_running()
        if self._service_class is None:
            self._service_class = self._get_service_provider() or self._detect_service_provider()
        return self._service_class(self, name)

    def guest_agent(self) -> Any:
        """The VM's guest agent service (``qemu-guest-agent`` or ``qemu-ga``)."""
        if "guest-agent" not in self._spec:
            for possible_name in ("qemu-guest-agent", "qemu-ga"):
                try:
                    if self.service(possible_name).exists():
                        self._spec["guest-agent"] = possible_name
                        break
                except RuntimeError as err:
                    raise RuntimeError("Could not find guest agent service: %s" % err)
            else:
                raise RuntimeError("Could not find guest agent service")
        return self.service(self._spec["guest-agent"])

    def has_guest_agent(self) -> bool:
        try:
            self.guest_agent()
        except RuntimeError:
            return False
        return True

    # --- lago's own -----------------------------------------------------------------------

    def cut_link(self, nets: Optional[List[str]] = None) -> None:
        """Cuts this VM's links on ``nets`` (all by default): the guest sees no carrier."""
        self._native.cut_link(nets)

    def restore_link(self, nets: Optional[List[str]] = None) -> None:
        """Restores this VM's links on ``nets`` (all by default)."""
        self._native.restore_link(nets)

    def degrade(self, net: str, delay: int = 0, jitter: int = 0, loss: float = 0.0, rate: int = 0) -> None:
        """Degrades this VM's link to ``net`` (delay and jitter in ms, loss in %, rate in kbit/s)."""
        self._native.degrade(net, delay, jitter, loss, rate)

    # --- the original's internals that plugins use ----------------------------------------

    def _check_running(self) -> None:
        if not self.running():
            raise LagoVMNotRunningError("VM %s is not running" % self.name())

    @classmethod
    def _normalize_spec(cls, spec: Dict[str, Any]) -> Dict[str, Any]:
        spec.setdefault("snapshots", {})
        spec.setdefault("metadata", {})
        spec.setdefault("ssh-user", "root")
        return spec

    def _template_metadata(self) -> Dict[str, Any]:
        disks = self._spec.get("disks") or [{}]
        return disks[0].get("metadata", {})

    def _artifact_paths(self) -> List[str]:
        return self._spec.get("artifacts", [])

    def _get_service_provider(self) -> Any:
        name = self._spec.get("service_provider")
        if name is None:
            return None
        if name not in self.service_providers:
            raise NoSuchPluginError("No service provider plugin %s (loaded: %s)" % (name, sorted(self.service_providers)))
        return self.service_providers[name]

    def _detect_service_provider(self) -> Any:
        LOGGER.debug("Detecting service provider for %s", self.name())
        for provider_name, service_class in self.service_providers.items():
            if service_class.is_supported(self):
                LOGGER.debug("Setting %s as service provider for %s", provider_name, self.name())
                self._spec["service_provider"] = provider_name
                return service_class
        raise RuntimeError("No service provider detected for %s" % self.name())

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, self.name())


__all__ = ["VMPlugin", "VMError", "ExtractPathError", "ExtractPathNoPathError", "LagoVMNotRunningError",
           "LagoCopyFilesToVMError", "LagoCopyFilesFromVMError", "LagoVMDoesNotExistError",
           "LagoFailedToGetVMStateError", "LagoWaitTimeoutError", "check_running"]
