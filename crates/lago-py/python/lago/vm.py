"""The original's ``lago.vm``: :class:`DefaultVM`, the class of VMs of ``vm-type: default``
(entry point ``default`` of group ``lago.plugins.vm``)."""

from .plugins.vm import VMPlugin


class DefaultVM(VMPlugin):
    """A VM with nothing added to :class:`lago.plugins.vm.VMPlugin`."""


__all__ = ["DefaultVM"]
