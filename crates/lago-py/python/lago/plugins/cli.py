"""The original's CLI plugins (spec 4.1.1): a verb of ``lago``/``lagocli`` is an entry point
of group ``lago.plugins.cli``: a :class:`CLIPlugin` subclass, or a function made one with
:func:`cli_plugin`, :func:`cli_plugin_add_argument` and :func:`cli_plugin_add_help`::

    @cli_plugin_add_argument('--dummy-flag', action='store_true')
    @cli_plugin(help='dummy help string')
    def my_fancy_plugin_func(dummy_flag, **kwargs):
        if dummy_flag:
            print("Dummy flag passed to noop subcommand!")
        else:
            print("Dummy flag not passed to noop subcommand!")

declared as ``noop=noop_module:my_fancy_plugin_func`` under ``lago.plugins.cli``, runs as
``lago noop`` (and ``lagocli noop``). ``lago`` runs it when no verb of its own and no
``lago-noop`` program has the name (see ``lago.cmd``); ``do_run`` gets the parsed arguments with
the global options (``prefix_path``, ``workdir_path``, ``prefix_name``, ``out_format``...).
"""

import functools
from abc import ABCMeta, abstractmethod
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import Plugin


class CLIPlugin(Plugin, metaclass=ABCMeta):
    """A verb: ``init_args`` (arguments of its ``argparse`` sub-parser, ``help``...),
    ``populate_parser(parser)`` and ``do_run(args)``."""

    def __init__(self) -> None:
        pass

    @property
    @abstractmethod
    def init_args(self) -> Dict[str, Any]:
        """Arguments to initialize the verb's parser (``help``...)."""

    @abstractmethod
    def populate_parser(self, parser: Any) -> None:
        """Adds the verb's arguments to ``parser``."""

    @abstractmethod
    def do_run(self, args: Any) -> None:
        """Runs the verb with the parsed ``args``."""


class CLIPluginFuncWrapper(CLIPlugin):
    """A function as a :class:`CLIPlugin`: it is called with every parsed argument as a keyword
    (so it takes ``**kwargs``)."""

    def __init__(self, do_run: Optional[Callable[..., Any]] = None, init_args: Optional[Dict[str, Any]] = None) -> None:
        self._init_args: Dict[str, Any] = init_args or {}
        self._parser_args: List[Tuple[Tuple[Any, ...], Dict[str, Any]]] = []
        self._do_run = do_run
        if do_run and self._init_args.get("help") is None:
            self.set_help()

    @property
    def init_args(self) -> Dict[str, Any]:
        return self._init_args

    @property
    def help(self) -> Optional[str]:
        return self._init_args.get("help")

    def set_help(self, help: Optional[str] = None) -> None:
        self._init_args["help"] = help if help is not None else (self._do_run.__doc__ if self._do_run else None)

    def set_init_args(self, init_args: Dict[str, Any]) -> None:
        self._init_args.update(init_args)

    def add_argument(self, *argument_args: Any, **argument_kwargs: Any) -> None:
        self._parser_args.append((argument_args, argument_kwargs))

    def populate_parser(self, parser: Any) -> None:
        for argument_args, argument_kwargs in self._parser_args:
            parser.add_argument(*argument_args, **argument_kwargs)

    def do_run(self, args: Any) -> None:
        assert self._do_run is not None
        self._do_run(**vars(args))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The function as it was."""
        assert self._do_run is not None
        return self._do_run(*args, **kwargs)


def cli_plugin_add_argument(*args: Any, **kwargs: Any) -> Callable[[Any], CLIPluginFuncWrapper]:
    """Decorator: adds an ``argparse`` argument to the plugin of the decorated function."""
    def decorator(func: Any) -> CLIPluginFuncWrapper:
        if not isinstance(func, CLIPluginFuncWrapper):
            func = CLIPluginFuncWrapper(do_run=func)
        func.add_argument(*args, **kwargs)
        return func
    return decorator


def cli_plugin_add_help(help: str) -> Callable[[Any], CLIPluginFuncWrapper]:
    """Decorator: sets the help of the plugin of the decorated function."""
    def decorator(func: Any) -> CLIPluginFuncWrapper:
        if not isinstance(func, CLIPluginFuncWrapper):
            func = CLIPluginFuncWrapper(do_run=func)
        func.set_help(help)
        return func
    return decorator


def cli_plugin(func: Optional[Callable[..., Any]] = None, **kwargs: Any) -> Any:
    """Decorator (with or without arguments): the decorated function as a :class:`CLIPlugin`;
    ``kwargs`` initialize its parser (``help``, ``prefix_chars``...)."""
    if func is None:
        return functools.partial(cli_plugin, **kwargs)
    if not isinstance(func, CLIPluginFuncWrapper):
        func = CLIPluginFuncWrapper(do_run=func, init_args=kwargs)
    else:
        func.set_init_args(kwargs)
    return func


__all__ = ["CLIPlugin", "CLIPluginFuncWrapper", "cli_plugin", "cli_plugin_add_argument", "cli_plugin_add_help"]
