"""The original's output-format plugins (``lago.plugins.output``): what ``lago -f NAME``
prints. ``default``, ``json``, ``yaml`` and ``flat`` are lago's own formats (rendered by its
Rust library, exactly as the CLI prints them); a third-party format is an entry point of group
``lago.plugins.output`` naming an :class:`OutFormatPlugin` subclass, and ``lago -f NAME``
uses it (through ``python3 -m lago.cmd``)."""

import json
from abc import ABCMeta, abstractmethod
from typing import Any

from . import Plugin
from .._lago import render_output


class OutFormatPlugin(Plugin, metaclass=ABCMeta):
    """Formats what a command reports (a dict) as text."""

    def __init__(self) -> None:
        pass

    @abstractmethod
    def format(self, info_dict: Any) -> str:
        """``info_dict`` as text."""


class _Native(OutFormatPlugin):
    _NAME = "default"

    def format(self, info_dict: Any) -> str:
        return render_output(self._NAME, json.dumps(info_dict))


class DefaultOutFormatPlugin(_Native):
    """Nested ``[key]:`` blocks, empty values skipped."""
    _NAME = "default"


class JSONOutFormatPlugin(_Native):
    """JSON, sorted keys, indented by 4."""
    _NAME = "json"


class YAMLOutFormatPlugin(_Native):
    """Block YAML, sorted keys."""
    _NAME = "yaml"


class FlatOutFormatPlugin(_Native):
    """One ``a/b/c: value`` line per leaf."""
    _NAME = "flat"


__all__ = ["OutFormatPlugin", "DefaultOutFormatPlugin", "JSONOutFormatPlugin", "YAMLOutFormatPlugin",
           "FlatOutFormatPlugin"]
