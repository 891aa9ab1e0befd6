"""The SDK of lago, shaped like the original's ``lago.sdk``::

    import logging
    from lago import sdk

    env = sdk.init(config='/tmp/init.yaml', workdir='/tmp/my_test_env',
                   logfile='/tmp/lago.log', loglevel=logging.DEBUG)
    env.start()
    vm = env.get_vms()['vm01']
    vm.ssh(['hostname', '-f'])   # CommandStatus(code=0, out='vm01.lago.local\\n', err='')
    env.destroy()

Everything runs in lago's Rust library (``lago._lago``); this module only sets Python's logging
up the way the original did and adds the context manager around the Ansible inventory.
"""

import collections
import contextlib
import logging
import os
import tempfile
from typing import Iterator, List, Optional, Union

from ._lago import Env, LagoError, LagoUserError, init_workdir

__all__ = ["SDK", "CommandStatus", "init", "load_env", "add_stream_logger", "LagoError", "LagoUserError"]

#: The outcome of a command in a VM.
CommandStatus = collections.namedtuple("CommandStatus", ["code", "out", "err"])

#: The format of the original's log files.
LOG_FORMAT = "%(asctime)s::%(filename)s::%(funcName)s::%(lineno)s::%(name)s::%(levelname)s::%(message)s"

PathLike = Union[str, "os.PathLike[str]"]


class SDK(Env):
    """An environment: ``start()``, ``stop()``, ``get_vms()``, ``get_nets()``, ``destroy()``...

    ``SDK(workdir)`` loads the current environment of an existing workdir (as ``load_env``).
    """

    @contextlib.contextmanager
    def ansible_inventory_temp_file(self, keys: Optional[List[str]] = None) -> Iterator["tempfile._TemporaryFileWrapper[str]"]:
        """The Ansible inventory in a named temporary file, for the ``with`` block."""
        with tempfile.NamedTemporaryFile(mode="w", prefix="lago-inventory-", suffix=".ini") as f:
            f.write(self.ansible_inventory(keys))
            f.flush()
            yield f

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


def _log_to(logfile: Optional[PathLike], loglevel: int) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())
    if logfile:
        handler = logging.FileHandler(os.fspath(logfile))
        handler.setLevel(loglevel)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)


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
    return SDK(created)


def load_env(workdir: PathLike, logfile: Optional[PathLike] = None, loglevel: int = logging.INFO) -> SDK:
    """Loads the current environment of an existing ``workdir``."""
    _log_to(logfile, loglevel)
    return SDK(os.fspath(workdir))


def add_stream_logger(level: int = logging.DEBUG, name: Optional[str] = None) -> None:
    """Shows lago's log records (logger ``name``, the root by default) on standard error."""
    logger = logging.getLogger(name)
    logger.setLevel(min(level, logger.level) if logger.level else level)
    handler = logging.StreamHandler()
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
