"""The original's ``lago.ssh``: commands on machines by address.

``ssh(ip_addr, command, ...)`` joins ``command`` with spaces for the remote shell, as the
original did, and returns a ``lago.utils.CommandStatus`` (its ``out``/``err`` text that also
decodes as bytes, ``lago.utils.CommandOutput``). Commands run with the system's
OpenSSH through lago's Rust library, not paramiko. An address of a VM of an environment this
process loaded (``sdk.init``, ``sdk.load_env``) is reached the way lago reaches that VM (its
address where the host has a leg on its network, else its forwarded port on 127.0.0.1; the
environment's key). Other addresses are reached directly on port 22, with ``ssh_key`` and/or
``password``.
"""

import logging
import sys
import time
import weakref
from typing import Any, Dict, List, Optional, Sequence, Union

from . import utils
from ._lago import ssh_host
from ._lago import ssh_tries as config_ssh_tries

LOGGER = logging.getLogger(__name__)

#: Addresses of the VMs of loaded environments: address -> VM object.
_VMS: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()


class LagoSSHTimeoutException(utils.LagoException):
    """SSH never connected."""


def register_vm(address: str, vm: Any) -> None:
    """Makes ``address`` reach ``vm`` (the SDK registers every VM it loads)."""
    _VMS[address] = vm


def _line(command: Union[str, Sequence[str]]) -> str:
    return command if isinstance(command, str) else " ".join(command)


def _echo(result: "utils.CommandStatus") -> None:
    for data, stream in ((result.out, sys.stdout), (result.err, sys.stderr)):
        if data:
            stream.write(data)
            stream.flush()


def ssh(ip_addr: str, command: Union[str, Sequence[str]], host_name: Optional[str] = None, data: Any = None,
        show_output: bool = True, propagate_fail: bool = True, tries: Optional[int] = None,
        ssh_key: Optional[Union[str, List[str]]] = None, username: str = "root",
        password: Optional[str] = "123456") -> "utils.CommandStatus":
    """Runs ``' '.join(command)`` on ``ip_addr``; ``data`` (str or bytes) on its standard input;
    with ``show_output`` its output is written to this process's ``sys.stdout``/``sys.stderr``
    as well. The connection is tried ``tries`` times a second apart (``None``: the
    configuration's ``ssh_tries``, 100) and :class:`LagoSSHTimeoutException` is raised when none
    connects. ``propagate_fail`` is accepted for the original's callers."""
    data = utils._stdin(data)
    line = _line(command)
    host_name = host_name or ip_addr
    vm = _VMS.get(ip_addr)
    LOGGER.debug("Running on %s: %s", host_name, line)
    if vm is not None:
        result = vm._native.exec_line(line, data, tries)
    else:
        key = ssh_key[0] if isinstance(ssh_key, list) and ssh_key else ssh_key
        result = ssh_host(ip_addr, line, 22, username or "root", key, password, data, tries, host_name)
    LOGGER.debug("Command on %s returned with %d", host_name, result.code)
    if show_output:
        _echo(result)
    return result


def wait_for_ssh(ip_addr: str, host_name: Optional[str] = None, connect_timeout: int = 600,
                 ssh_key: Optional[str] = None, username: str = "root", password: Optional[str] = "123456") -> None:
    """Waits until ``true`` runs on ``ip_addr`` (at most ``connect_timeout`` seconds, then one
    last try); raises ``RuntimeError`` when it never does."""
    host_name = host_name or ip_addr
    start = time.time()
    while time.time() - start < connect_timeout:
        try:
            if ssh(ip_addr, ["true"], host_name=host_name, tries=1, show_output=False,
                   ssh_key=ssh_key, username=username, password=password).code == 0:
                break
        except utils.LagoException as err:
            LOGGER.debug("Got exception while sshing to %s: %s", host_name, err)
        time.sleep(1)
    else:
        if ssh(ip_addr, ["true"], host_name=host_name, show_output=False, ssh_key=ssh_key,
               username=username, password=password).code != 0:
            raise RuntimeError("Failed to connect remote shell to %s" % host_name)
    LOGGER.debug("Wait succeeded for ssh to %s", host_name)


def ssh_script(ip_addr: str, path: str, host_name: Optional[str] = None, show_output: bool = True,
               ssh_key: Optional[str] = None, username: str = "root",
               password: Optional[str] = "123456") -> "utils.CommandStatus":
    """Runs the local script ``path`` on ``ip_addr`` with ``bash -s``."""
    with open(path) as script:
        return ssh(ip_addr, ["bash", "-s"], host_name=host_name, data=script.read(), show_output=show_output,
                   ssh_key=ssh_key, username=username, password=password)


def interactive_ssh(ip_addr: str, command: Optional[Sequence[str]] = None, host_name: Optional[str] = None,
                    ssh_key: Optional[str] = None, username: str = "root",
                    password: Optional[str] = "123456") -> "utils.CommandStatus":
    """``command`` (a shell by default) on ``ip_addr`` with this process's terminal; only the
    addresses of loaded VMs are supported."""
    vm = _VMS.get(ip_addr)
    if vm is None:
        raise utils.LagoUserException(
            "interactive_ssh reaches the VMs of loaded environments only; %s is none of them" % ip_addr)
    return vm.interactive_ssh(command)


def get_ssh_client(ip_addr: str, ssh_key: Optional[str] = None, host_name: Optional[str] = None,
                   ssh_tries: Optional[int] = None, propagate_fail: bool = True, username: str = "root",
                   password: Optional[str] = "123456") -> Any:
    """A connected ``paramiko.SSHClient``, when paramiko is installed (lago itself runs commands
    through OpenSSH and does not need it). A VM of a loaded environment is reached at its
    forwarded port with the environment's key. Raises :class:`LagoSSHTimeoutException` after
    ``ssh_tries`` failed attempts a second apart."""
    try:
        import paramiko  # type: ignore[import-not-found]
    except ImportError as e:
        raise utils.LagoException(
            "get_ssh_client returns a paramiko client, and paramiko is not installed "
            "(pip install paramiko); lago.ssh.ssh runs commands without it") from e
    host_name = host_name or ip_addr
    host, port, key = ip_addr, 22, ssh_key
    vm = _VMS.get(ip_addr)
    if vm is not None:
        host, port, key = vm._native.ssh_endpoint()
        username = vm._spec.get("ssh-user", username)
    tries = ssh_tries if ssh_tries is not None else config_ssh_tries()
    start = time.time()
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    while tries > 0:
        try:
            client.connect(host, port=port, username=username, password=password, key_filename=key, timeout=10)
            return client
        except (OSError, paramiko.ssh_exception.SSHException, EOFError) as err:
            LOGGER.debug("Error connecting to %s: %s", host_name, err)
        tries -= 1
        time.sleep(1)
    raise LagoSSHTimeoutException("Timed out (in %d s) trying to ssh to %s" % (time.time() - start, host_name))


__all__ = ["LagoSSHTimeoutException", "ssh", "wait_for_ssh", "ssh_script", "interactive_ssh", "get_ssh_client",
           "register_vm"]
