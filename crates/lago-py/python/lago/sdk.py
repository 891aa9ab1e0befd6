"""The SDK of lago, shaped like the original's ``lago.sdk``::

    import logging
    from lago import sdk

    env = sdk.init(config='/tmp/init.yaml', workdir='/tmp/my_test_env',
                   logfile='/tmp/lago.log', loglevel=logging.DEBUG)
    env.start()
    vm = env.get_vms()['vm01']
    vm.ssh(['hostname', '-f'])   # CommandStatus(code=0, out='vm01.lago.local\\n', err='')
    env.destroy()

Everything runs in lago's Rust library (``lago._lago``); this module sets Python's logging up
the way the original did, gives the SDK object the original's forwarding to its prefix
(``env._prefix``, ``env.virt_env``) and its VMs the classes of their ``vm-type``.
"""

import contextlib
import logging
import os
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Union

from . import sdk_utils
from ._lago import Env, LagoError, LagoUserError, init_workdir
from .prefix import Prefix
from .utils import CommandStatus
from .workdir import Workdir

__all__ = ["SDK", "CommandStatus", "init", "load_env", "add_stream_logger", "LagoError", "LagoUserError"]

#: The format of the original's log files.
LOG_FORMAT = sdk_utils.LOG_FORMAT

PathLike = Union[str, "os.PathLike[str]"]


class SDK(Env):
    """An environment: ``start()``, ``stop()``, ``get_vms()``, ``get_nets()``, ``destroy()``...

    ``SDK(workdir)`` loads the current prefix of a workdir (as ``load_env``); ``SDK(workdir,
    prefix)`` a given prefix (a ``lago.prefix.Prefix`` or a prefix name). As the original's, it
    forwards to its prefix: ``env._prefix``, ``env.virt_env`` (``get_vm``, ``get_net``...),
    and the prefix's exposed methods through ``env._pprefix``.
    """

    def __new__(cls, workdir: Any, prefix: Any = None) -> "SDK":
        path = workdir.path if isinstance(workdir, Workdir) else os.fspath(workdir)
        if isinstance(prefix, Prefix):
            return super().__new__(cls, path, None, prefix._native.prefix_path)
        return super().__new__(cls, path, prefix)

    def __init__(self, workdir: Any, prefix: Any = None) -> None:
        self._workdir = workdir if isinstance(workdir, Workdir) else Workdir(os.fspath(workdir))
        self._prefix = Prefix(str(self.prefix_path), _native=self)
        self._pprefix = sdk_utils.SDKWrapper(self._prefix)

    def __getattr__(self, name: str) -> Any:
        # Only names the class lacks: the prefix's exposed methods.
        if name.startswith("__") or name in ("_prefix", "_pprefix", "_workdir"):
            raise AttributeError(name)
        return getattr(self._pprefix, name)

    @property
    def virt_env(self) -> Any:
        """The prefix's VMs and networks (``get_vm``, ``get_vms``, ``get_net``, ``get_nets``)."""
        return self._prefix.virt_env

    def get_vms(self) -> Dict[str, Any]:
        """``{name: VM}`` (each a ``lago.plugins.vm.VMPlugin`` of its ``vm-type``)."""
        return self._prefix.virt_env.get_vms()

    def get_nets(self) -> Dict[str, Any]:
        """``{name: Network}``."""
        return self._prefix.virt_env.get_nets()

    def ansible_inventory_temp_file(self, keys: Optional[List[str]] = None) -> Any:
        """The Ansible inventory in a named temporary file, for the ``with`` block."""
        return _inventory_file(self.ansible_inventory(keys))

    def fork(
        self,
        n: Optional[int] = None,
        names: Optional[List[str]] = None,
        from_frozen: bool = False,
        wait: bool = True,
    ) -> List["SDK"]:
        """Copies of the running environment (``lago fork``), each an ``SDK`` of its own.

        The environment is frozen at one instant (its VMs paused together) and ``n`` copies (one
        per name of ``names``, else one) go on from that instant, as does the environment
        itself: new prefixes of the same workdir, each with its own networks, ports and
        forwards, their memory shared with the frozen state until written. With
        ``from_frozen``, copies of the frozen state of the environment's last fork (of a copy:
        the state it was made from), the environment left alone. ``wait=False``: copies that do
        not fit the host's memory fail at once instead of waiting in line.
        """
        made = self.fork_prefixes(n, names, from_frozen, wait)
        return [SDK(self._workdir, name) for name in made]

    @contextlib.contextmanager
    def partitioned(self, net: str, groups: List[List[str]]) -> Iterator[None]:
        """Network ``net`` partitioned into ``groups`` of VM names for the ``with`` block, healed
        after it (also when the block raises)."""
        network = self.get_nets()[net]
        network.partition(groups)
        try:
            yield
        finally:
            network.heal()


@contextlib.contextmanager
def _inventory_file(text: str) -> Iterator["tempfile._TemporaryFileWrapper[str]"]:
    with tempfile.NamedTemporaryFile(mode="w", prefix="lago-inventory-", suffix=".ini") as f:
        f.write(text)
        f.flush()
        yield f


def _log_to(logfile: Optional[PathLike], loglevel: int) -> None:
    sdk_utils.setup_sdk_logging(os.fspath(logfile) if logfile else None, loglevel)


def init(
    config: PathLike,
    workdir: Optional[PathLike] = None,
    logfile: Optional[PathLike] = None,
    loglevel: int = logging.INFO,
    **kwargs: Union[str, bool, "os.PathLike[str]"],
) -> SDK:
    """Creates the environment of init file ``config`` in ``workdir`` (default ``./.lago``).

    ``logfile`` gets lago's log records (and everything else logged) from ``loglevel`` up.
    ``kwargs`` are ``lago init``'s options: ``template_repo_path``, ``template_repo_name``,
    ``template_store``, ``template_repos``, ``skip_bootstrap``, ``skip_build``.
    """
    _log_to(logfile, loglevel)
    options = {k: (v if isinstance(v, bool) else os.fspath(v)) for k, v in kwargs.items()}
    created = init_workdir(os.fspath(config), os.fspath(workdir) if workdir is not None else None, options)
    return SDK(str(created))


def load_env(workdir: PathLike, logfile: Optional[PathLike] = None, loglevel: int = logging.INFO) -> SDK:
    """Loads the current environment of an existing ``workdir``."""
    _log_to(logfile, loglevel)
    return SDK(os.path.abspath(os.fspath(workdir)))


def add_stream_logger(level: int = logging.DEBUG, name: Optional[str] = None) -> None:
    """Shows lago's log records (logger ``name``, the root by default) on standard error."""
    logger = logging.getLogger(name)
    logger.setLevel(min(level, logger.level) if logger.level else level)
    handler = logging.StreamHandler()
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
