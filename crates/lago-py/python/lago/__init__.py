"""lago: ad-hoc virtual environments of VMs, networks and disks.

The SDK is ``lago.sdk`` (``from lago import sdk``); the exceptions it raises are here:
``LagoError`` for every failure, and its subclass ``LagoUserError`` when the input or the
request is wrong (an init file, a VM name, an option) rather than the host.
"""

from ._lago import LagoError, LagoUserError

__all__ = ["LagoError", "LagoUserError"]
