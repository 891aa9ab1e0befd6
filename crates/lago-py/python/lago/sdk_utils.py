"""The original's ``lago.sdk_utils``: the SDK object shows only its prefix's methods decorated
with :func:`expose` (through :class:`SDKWrapper`), and :func:`setup_sdk_logging`."""

import functools
import inspect
import logging
from typing import Any, Callable, List, Optional

#: The format of the original's log files.
LOG_FORMAT = "%(asctime)s::%(filename)s::%(funcName)s::%(lineno)s::%(name)s::%(levelname)s::%(message)s"


class SDKMethod:
    """Metadata inside an exposed function."""

    def __init__(self, name: str) -> None:
        self.name = name


def expose(func: Any) -> Any:
    """Marks a method (or class) to be shown through :class:`SDKWrapper`."""
    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)
    if inspect.isclass(func):
        wrapped._sdkmetaclass = SDKMethod(func.__name__)  # type: ignore[attr-defined]
    else:
        wrapped._sdkmeta = SDKMethod(func.__name__)  # type: ignore[attr-defined]
    return wrapped


def getattr_sdk(attr: Any, name: str) -> Any:
    """``attr`` when it is an exposed routine; ``AttributeError`` otherwise."""
    if inspect.isroutine(attr) and hasattr(attr, "_sdkmeta"):
        return attr
    raise AttributeError(name)


class SDKWrapper:
    """A proxy of ``wrapped`` that shows only its exposed methods."""

    def __init__(self, wrapped: Any) -> None:
        object.__setattr__(self, "__wrapped__", wrapped)

    def __getattr__(self, name: str) -> Any:
        return getattr_sdk(getattr(self.__wrapped__, name), name)

    def __dir__(self) -> List[str]:
        names = []
        for name in dir(self.__wrapped__):
            try:
                getattr_sdk(getattr(self.__wrapped__, name), name)
                names.append(name)
            except AttributeError:
                pass
        return names


def setup_sdk_logging(logfile: Optional[str] = None, loglevel: int = logging.INFO) -> None:
    """The root logger at DEBUG with a ``NullHandler``; with ``logfile``, a ``FileHandler`` of
    ``loglevel`` in the original's format."""
    logging.root.setLevel(logging.DEBUG)
    if not any(isinstance(h, logging.NullHandler) for h in logging.root.handlers):
        logging.root.addHandler(logging.NullHandler())
    if logfile:
        handler = logging.FileHandler(logfile)
        handler.setLevel(loglevel)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.root.addHandler(handler)


__all__ = ["SDKWrapper", "SDKMethod", "expose", "getattr_sdk", "setup_sdk_logging", "LOG_FORMAT"]
