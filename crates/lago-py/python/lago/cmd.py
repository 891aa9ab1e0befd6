"""The original's ``lago.cmd``: its command line, for the verbs of Python CLI plugins.

``lago VERB ...`` (the Rust program) runs ``python3 -m lago.cmd <its arguments>`` when ``VERB``
is neither one of its own verbs nor a ``lago-VERB`` program, and this Python has a
``lago.plugins.cli`` entry point of that name. The parser is the original's: its global options
(``--prefix-path``, ``--workdir-path``, ``--prefix-name``, ``-f``...), then one sub-parser per
plugin, and ``do_run(args)`` gets them all (``args.out_format`` is the output plugin object).
The Rust program sets ``LAGO_PREFIX_PATH`` and ``LAGO_WORKDIR_PATH`` when it finds a prefix;
:data:`in_lago_prefix` gives a plugin function ``prefix=``.

``python3 -m lago.cmd --lago-list-plugins`` prints the plugins as JSON (``{verb: help}``);
``python3 -m lago.cmd --lago-format NAME`` prints the JSON document on standard input through
output plugin ``NAME`` (``lago -f NAME`` for a plugin's format).
"""

import argparse
import json
import logging
import os
import signal
import sys
from typing import Any, Dict, List, Optional

from . import plugins, utils
from .plugins.output import DefaultOutFormatPlugin
from .prefix import Prefix
from .workdir import Workdir

LOGGER = logging.getLogger(__name__)

#: The original's decorator for plugin functions that work on a prefix (``prefix=`` keyword).
in_lago_prefix = utils.in_prefix(prefix_class=Prefix, workdir_class=Workdir)


class _Parser(argparse.ArgumentParser):
    """``argparse`` with the spelling of the documentation's example (``addArgument``)."""

    def addArgument(self, *args: Any, **kwargs: Any) -> Any:
        return self.add_argument(*args, **kwargs)


def _version() -> str:
    try:
        from importlib import metadata
        return metadata.version("lago")
    except Exception:
        return "unknown"


def create_parser(cli_plugins: Dict[str, Any], out_plugins: Dict[str, Any]) -> argparse.ArgumentParser:
    """The original's parser: global options, then a sub-parser per CLI plugin."""
    parser = _Parser(prog=os.environ.get("LAGO_PROG", "lago"), description="Command line interface to Lago",
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-l", "--loglevel", choices=["info", "debug", "error", "warning"], default="info",
                        help="Log level to use")
    parser.add_argument("--logdepth", type=int, default=3, help="How many task levels to show")
    parser.add_argument("--version", action="version", version="%(prog)s " + _version())
    parser.add_argument("--out-format", "-f", action="store", default="default", choices=sorted(out_plugins))
    parser.add_argument("--prefix-path", "-p", action="store", default=None,
                        help="Path to the prefix to use, will be deprecated, use --workdir-path instead")
    parser.add_argument("--workdir-path", "-w", action="store", default=None, help="Path to the workdir to use.")
    parser.add_argument("--prefix-name", "-P", action="store", default="current", help="Name of the prefix to use.")
    parser.add_argument("--ssh-user", action="store", help="User for SSH provider.")
    parser.add_argument("--ssh-password", action="store", help="Password for SSH provider.")
    parser.add_argument("--ssh-tries", action="store", type=int, help="Number of ssh time outs to wait before failing.")
    parser.add_argument("--ssh-timeout", action="store", type=int,
                        help="Seconds to wait before marking SSH connection as failed.")
    parser.add_argument("--libvirt_url", action="store", help="libvirt URI, currently only system is supported.")
    parser.add_argument("--libvirt-user", action="store", help="libvirt user")
    parser.add_argument("--libvirt-password", action="store", help="libvirt password")
    parser.add_argument("--default_vm_type", action="store", help="Default vm type")
    parser.add_argument("--default_vm_provider", action="store", help="Default vm provider")
    parser.add_argument("--default_root_password", action="store", help="Default root password")
    parser.add_argument("--lease_dir", action="store", help="Path to store created subnets configurations")
    parser.add_argument("--reposync-dir", action="store", help="Reposync dir if used")
    parser.add_argument("--accel", choices=["auto", "kvm", "tcg"], help="Hardware acceleration for VMs")
    parser.add_argument("--ignore-warnings", action="store_true")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for name, plugin in cli_plugins.items():
        sub = verbs.add_parser(name=name, formatter_class=argparse.ArgumentDefaultsHelpFormatter, **plugin.init_args)
        plugin.populate_parser(sub)
    return parser


def _exit_handler(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)


def _plugin_list(cli_plugins: Dict[str, Any]) -> str:
    return json.dumps({name: (p.init_args.get("help") or "") for name, p in sorted(cli_plugins.items())})


def main(argv: Optional[List[str]] = None) -> None:
    """Runs a CLI plugin's verb (exit code 2 for a ``LagoException``, 1 for any other error)."""
    signal.signal(signal.SIGTERM, _exit_handler)
    signal.signal(signal.SIGHUP, _exit_handler)
    argv = sys.argv[1:] if argv is None else argv
    cli_plugins = plugins.load_plugins(plugins.PLUGIN_ENTRY_POINTS["cli"])
    out_plugins = plugins.load_plugins(plugins.PLUGIN_ENTRY_POINTS["out"])
    out_plugins.setdefault("default", DefaultOutFormatPlugin())
    if argv[:1] == ["--lago-list-plugins"]:
        print(_plugin_list(cli_plugins))
        return
    if argv[:1] == ["--lago-format"] and len(argv) == 2:
        if argv[1] not in out_plugins:
            print("lago: unknown output format %r (known: %s)" % (argv[1], ", ".join(sorted(out_plugins))),
                  file=sys.stderr)
            sys.exit(2)
        print(out_plugins[argv[1]].format(json.load(sys.stdin)))
        return
    parser = create_parser(cli_plugins, out_plugins)
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        sys.exit(1)
    logging.basicConfig(level=getattr(logging, args.loglevel.upper()), format="%(message)s")
    if args.ignore_warnings:
        logging.getLogger("py.warnings").setLevel(logging.ERROR)
    args.out_format = out_plugins[args.out_format]
    try:
        cli_plugins[args.verb].do_run(args)
    except utils.LagoException as e:
        LOGGER.error("%s", e)
        LOGGER.debug(e, exc_info=True)
        sys.exit(2)
    except Exception:
        LOGGER.exception("Error occured, aborting")
        sys.exit(1)


__all__ = ["in_lago_prefix", "create_parser", "main"]

if __name__ == "__main__":
    main()
