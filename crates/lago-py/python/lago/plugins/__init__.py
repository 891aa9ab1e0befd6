"""The original's plugin system (spec 4.1.1): plugins are setuptools entry points of the groups
in :data:`PLUGIN_ENTRY_POINTS`, loaded with :func:`load_plugins`.

- ``lago.plugins.cli``: verbs of ``lago``/``lagocli`` (:mod:`lago.plugins.cli`);
- ``lago.plugins.output``: formats of ``-f NAME`` (:mod:`lago.plugins.output`);
- ``lago.plugins.vm``: VM classes, chosen by a domain's ``vm-type`` (:mod:`lago.plugins.vm`);
- ``lago.plugins.vm_service``: service managers in VMs (:mod:`lago.plugins.service`).

``lago.plugins.vm_provider`` is listed for the original's callers, and nothing of lago reads it:
lago's providers (``local-qemu``, ``local-libvirt``, ``ssh``) are in its Rust library.
"""

import logging
from importlib import metadata
from typing import Any, Dict

LOGGER = logging.getLogger(__name__)

#: Map of plugin type string -> setuptools entry point group.
PLUGIN_ENTRY_POINTS = {
    "cli": "lago.plugins.cli",
    "out": "lago.plugins.output",
    "vm": "lago.plugins.vm",
    "vm-service": "lago.plugins.vm_service",
    "vm-provider": "lago.plugins.vm_provider",
}


class PluginError(Exception):
    """A plugin could not be used."""


class NoSuchPluginError(PluginError):
    """No plugin of that name."""


class Plugin:
    """Base class for all the plugins."""


def _entry_points(namespace: str) -> list:
    found = metadata.entry_points()
    if hasattr(found, "select"):
        points = list(found.select(group=namespace))
    else:  # Python 3.9
        points = list(found.get(namespace, []))  # type: ignore[attr-defined]
    # One per name: the first distribution that declares it.
    unique: Dict[str, Any] = {}
    for ep in points:
        unique.setdefault(ep.name, ep)
    return list(unique.values())


def load_plugins(namespace: str, instantiate: bool = True) -> Dict[str, Any]:
    """The plugins of entry point group ``namespace``: ``{name: plugin}``. With ``instantiate``,
    a plugin that is a class (not already a :class:`Plugin` instance) is instantiated. A plugin
    that cannot be loaded is left out with a warning."""
    plugins: Dict[str, Any] = {}
    for ep in _entry_points(namespace):
        try:
            plugin = ep.load()
        except Exception as err:
            LOGGER.warning("Could not load plugin %s: %s", ep.name, err)
            continue
        if instantiate and not isinstance(plugin, Plugin):
            plugin = plugin()
        plugins[ep.name] = plugin
    return plugins


__all__ = ["PLUGIN_ENTRY_POINTS", "Plugin", "PluginError", "NoSuchPluginError", "load_plugins"]
