"""lago's service managers as the original's service plugins (entry points ``systemd`` and
``sysvinit`` of ``lago.plugins.vm_service``): the commands and the reading of their output are
lago's Rust library's (``systemctl status --lines=0``, ``/sbin/service NAME status``)."""

from typing import Any

from .plugins.service import ServicePlugin, ServiceState


class _LagoService(ServicePlugin):
    _PROVIDER = ""
    BIN_PATH = ""

    def state(self) -> ServiceState:
        return ServiceState[self._vm._native.service_state(self._name, self._PROVIDER).upper()]

    def _request_start(self) -> Any:
        return self._vm._native.service_request(self._name, self._PROVIDER, "start")

    def _request_stop(self) -> Any:
        return self._vm._native.service_request(self._name, self._PROVIDER, "stop")


class SystemdService(_LagoService):
    """Services of systemd (``/usr/bin/systemctl``)."""
    _PROVIDER = "systemd"
    BIN_PATH = "/usr/bin/systemctl"


class SysVInitService(_LagoService):
    """Services of SysV init scripts (``/sbin/service``)."""
    _PROVIDER = "sysvinit"
    BIN_PATH = "/sbin/service"


__all__ = ["SystemdService", "SysVInitService"]
