"""The original's service plugins (``lago.plugins.service``): a service of a VM is driven by a
:class:`ServicePlugin` class, found in entry point group ``lago.plugins.vm_service`` (lago
declares ``systemd`` and ``sysvinit``, in :mod:`lago.service`). ``vm.service(name)`` uses the
domain's ``service_provider`` when it names one, else the first provider whose
:meth:`ServicePlugin.is_supported` says yes for the VM."""

from abc import ABCMeta, abstractmethod
from enum import Enum
from typing import Any

from . import Plugin


class ServiceState(Enum):
    #: The service is not available in the domain.
    MISSING = 0
    INACTIVE = 1
    ACTIVE = 2


class ServicePlugin(Plugin, metaclass=ABCMeta):
    """Service ``name`` of VM ``vm``. Subclasses give ``BIN_PATH`` (the program that manages
    services, whose presence in the VM makes :meth:`is_supported` true), :meth:`state`,
    :meth:`_request_start` and :meth:`_request_stop` (a ``CommandStatus``: true on failure)."""

    def __init__(self, vm: Any, name: str) -> None:
        self._vm = vm
        self._name = name

    @abstractmethod
    def state(self) -> ServiceState:
        """The service's state now."""

    @abstractmethod
    def _request_start(self) -> Any:
        """Asks the manager to start the service; a ``CommandStatus``, true when it failed."""

    @abstractmethod
    def _request_stop(self) -> Any:
        """Asks the manager to stop the service; a ``CommandStatus``, true when it failed."""

    @property
    @abstractmethod
    def BIN_PATH(self) -> str:
        """Full path of the service manager in the VM."""

    def exists(self) -> bool:
        return self.state() != ServiceState.MISSING

    def alive(self) -> bool:
        return self.state() == ServiceState.ACTIVE

    def start(self) -> None:
        state = self.state()
        if state == ServiceState.MISSING:
            raise RuntimeError("Service %s not present" % self._name)
        elif state == ServiceState.ACTIVE:
            return
        if self._request_start():
            raise RuntimeError("Failed to start service")

    def stop(self) -> None:
        state = self.state()
        if state == ServiceState.MISSING:
            raise RuntimeError("Service %s not present" % self._name)
        elif state == ServiceState.INACTIVE:
            return
        if self._request_stop():
            raise RuntimeError("Failed to stop service")

    @classmethod
    def is_supported(cls, vm: Any) -> bool:
        return vm.ssh(["test", "-e", cls.BIN_PATH], show_output=False).code == 0

    def __repr__(self) -> str:
        return "<%s %s of VM %s>" % (type(self).__name__, self._name, self._vm.name())


__all__ = ["ServiceState", "ServicePlugin"]
