"""The original's ``lago.workdir``: its exception classes (raised where the original raised
them: a second ``init`` of a workdir's prefix raises ``PrefixAlreadyExists``) and a small
``Workdir`` for CLI plugins (``parent_workdir``), on lago's Rust library."""

import os
from typing import Any, Dict, List, Optional

from . import utils
from ._lago import LagoUserError, resolve_prefix


class WorkdirError(RuntimeError, LagoUserError):
    """Base of the workdir errors (a ``RuntimeError``, as the original's, and a ``LagoUserError``)."""


class PrefixNotFound(WorkdirError):
    """No prefix of that name in the workdir."""


class MalformedWorkdir(WorkdirError):
    """Not a workdir, or a broken one (no ``current`` link, or one to nothing)."""


class PrefixAlreadyExists(WorkdirError):
    """A prefix of that name is already in the workdir."""


class LagoPrefixAlreadyExistsError(PrefixAlreadyExists, utils.LagoUserException):
    """What the original's ``Workdir.add_prefix`` raised; a :class:`PrefixAlreadyExists` too."""


class Workdir:
    """A workdir: ``path``, its ``prefixes`` (names), ``current`` (the name ``current`` links to),
    ``join(*parts)`` and ``get_prefix(name)`` (a ``lago.prefix.Prefix``)."""

    def __init__(self, path: str, prefix_class: Any = None) -> None:
        self.path = os.path.abspath(path)
        self.prefix_class = prefix_class

    def join(self, *args: str) -> str:
        return os.path.join(self.path, *args)

    @property
    def current(self) -> Optional[str]:
        link = self.join("current")
        return os.path.basename(os.readlink(link)) if os.path.islink(link) else None

    @property
    def prefixes(self) -> List[str]:
        try:
            names = os.listdir(self.path)
        except FileNotFoundError as e:
            raise MalformedWorkdir("Empty dir %s" % self.path) from e
        return sorted(n for n in names
                      if n != "current" and os.path.isfile(os.path.join(self.path, n, "initialized")))

    def get_prefix(self, name: str) -> Any:
        from . import prefix as lago_prefix
        path, _ = resolve_prefix(None, self.path, None if name == "current" else name)
        return (self.prefix_class or lago_prefix.Prefix)(str(path))

    @classmethod
    def is_workdir(cls, path: str) -> bool:
        return os.path.islink(os.path.join(path, "current"))

    @classmethod
    def resolve_workdir_path(cls, start_path: str = os.curdir) -> str:
        """The workdir at ``start_path`` or above it (``auto``: from the current directory)."""
        if start_path == "auto":
            start_path = os.curdir
        _, workdir = resolve_prefix(None, start_path, None)
        return str(workdir)


__all__ = ["WorkdirError", "PrefixNotFound", "MalformedWorkdir", "PrefixAlreadyExists",
           "LagoPrefixAlreadyExistsError", "Workdir"]
