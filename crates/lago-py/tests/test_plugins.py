"""The original's plugin system (spec 4.1.1) from a plugin package built here and installed, with
lago's wheel, into a fresh venv: the documentation's `noop` CLI plugin (both of its forms, in
Python 3 syntax), a `vm-type` class and an output format. `lago noop` and `lagocli noop` are
the venv's commands."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import TARGET

NOOP_MODULE = '''\
from lago.plugins.cli import CLIPlugin, cli_plugin, cli_plugin_add_argument
from lago.plugins.output import OutFormatPlugin
from lago.plugins.vm import VMPlugin


class NoopCLIplugin(CLIPlugin):
    init_args = {
        'help': 'dummy help string',
    }

    def populate_parser(self, parser):
        parser.addArgument('--dummy-flag', action='store_true')

    def do_run(self, args):
        if args.dummy_flag:
            print("Dummy flag passed to noop subcommand!")
        else:
            print("Dummy flag not passed to noop subcommand!")


@cli_plugin_add_argument('--dummy-flag', action='store_true')
@cli_plugin(help='dummy help string')
def my_fancy_plugin_func(dummy_flag, **kwargs):
    if dummy_flag:
        print("Dummy flag passed to noop subcommand!")
    else:
        print("Dummy flag not passed to noop subcommand!")


@cli_plugin_add_argument('--show', action='store_true')
def where(show, prefix_path, workdir_path, out_format, **kwargs):
    "Where the plugin runs"
    import os
    print("prefix", os.environ.get("LAGO_PREFIX_PATH"), "workdir-option", workdir_path,
          "format", type(out_format).__name__)


class GreeterVM(VMPlugin):
    def describe(self):
        return "%s greets on %s" % (self.name(), self.mgmt_name)


class Shout(OutFormatPlugin):
    def format(self, info_dict):
        return "SHOUT " + " ".join(sorted(info_dict))
'''

ENTRY_POINTS = """\
[lago.plugins.cli]
noop = noop_module:my_fancy_plugin_func
noopclass = noop_module:NoopCLIplugin
where = noop_module:where

[lago.plugins.vm]
greeter = noop_module:GreeterVM

[lago.plugins.output]
shout = noop_module:Shout
"""


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_plugin_wheel(out: Path) -> Path:
    """The plugin package as a wheel (a zip with its metadata, as any build backend makes)."""
    files = {
        "noop_module.py": NOOP_MODULE.encode(),
        "noop_plugin-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: noop-plugin\nVersion: 1.0\n",
        "noop_plugin-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: lago-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "noop_plugin-1.0.dist-info/entry_points.txt": ENTRY_POINTS.encode(),
    }
    wheel = out / "noop_plugin-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        record = [_record_line(n, d) for n, d in files.items()] + ["noop_plugin-1.0.dist-info/RECORD,,"]
        z.writestr("noop_plugin-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with lago's wheel and the plugin package."""
    wheels = sorted((TARGET / "wheels").glob("lago-*.whl"))
    if not wheels:
        raise RuntimeError(f"no lago wheel in {TARGET / 'wheels'}: run `bash scripts/setup.sh --tests` first")
    root = tmp_path_factory.mktemp("venv")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    plugin = build_plugin_wheel(root)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", "--disable-pip-version-check", str(wheels[-1]), str(plugin)],
                   check=True)
    return venv


def run(venv: Path, *argv: str, cwd: Path = None) -> subprocess.CompletedProcess:
    # Only the venv: no other lago, no user site-packages.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAGO_PYTHON")}
    env["PATH"] = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    env["PYTHONNOUSERSITE"] = "1"
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_the_documented_noop_plugin_runs_as_lago_and_lagocli(venv: Path) -> None:
    bin_dir = venv / "bin"
    out = run(venv, str(bin_dir / "lago"), "noop", "--dummy-flag")
    assert (out.returncode, out.stdout) == (0, "Dummy flag passed to noop subcommand!\n"), out.stderr
    out = run(venv, str(bin_dir / "lagocli"), "noop")
    assert (out.returncode, out.stdout) == (0, "Dummy flag not passed to noop subcommand!\n"), out.stderr
    # The class form, with the documentation's `parser.addArgument`.
    out = run(venv, "lago", "noopclass", "--dummy-flag")
    assert out.stdout == "Dummy flag passed to noop subcommand!\n", out.stderr
    # Its own help, and the list of plugins in lago's.
    out = run(venv, "lago", "noop", "--help")
    assert "--dummy-flag" in out.stdout and out.stdout.startswith("usage: lago noop"), out.stdout
    out = run(venv, "lagocli", "--help")
    assert "Plugins:" in out.stdout and "noop" in out.stdout and "dummy help string" in out.stdout, out.stdout
    assert "usage: lagocli" in out.stdout
    out = run(venv, "lago", "nosuchverb")
    assert out.returncode == 2 and "Unknown command `nosuchverb`" in out.stderr


def test_a_plugin_gets_the_global_options_and_the_prefix(venv: Path, lab) -> None:
    _, home, _ = lab
    out = run(venv, "lago", "--workdir-path", str(home / "work"), "-f", "json", "where", "--show")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["prefix", str(home / "work" / "default"), "workdir-option", str(home / "work"),
                                  "format", "JSONOutFormatPlugin"]


def test_an_output_plugin_formats_lagos_output(venv: Path, lab) -> None:
    _, home, _ = lab
    out = run(venv, "lago", "--workdir-path", str(home / "work"), "-f", "shout", "status")
    assert (out.returncode, out.stdout) == (0, "SHOUT Prefix\n"), out.stderr
    out = run(venv, "lago", "--workdir-path", str(home / "work"), "-f", "nope", "status")
    assert out.returncode == 2 and "unknown output format 'nope'" in out.stderr, out.stderr


def test_vm_type_names_the_class_of_the_vms(venv: Path, tmp_path: Path, lago_config) -> None:
    (tmp_path / "LagoInitFile").write_text(textwrap.dedent("""\
        domains:
          vm01:
            vm-type: greeter
            memory: 256
            nics: [{net: lab}]
            disks: [{template_name: tiny, type: template, name: root, dev: vda}]
          vm02:
            memory: 256
            nics: [{net: lab}]
            disks: [{template_name: tiny, type: template, name: root, dev: vda}]
        nets:
          lab: {management: true}
        """))
    program = textwrap.dedent(f"""
        import json
        from lago import sdk
        env = sdk.init({str(tmp_path / 'LagoInitFile')!r}, workdir={str(tmp_path / 'work')!r})
        try:
            vms = env.get_vms()
            print(json.dumps({{n: [type(v).__name__, getattr(v, 'describe', lambda: None)()] for n, v in vms.items()}}))
        finally:
            env.destroy()
    """)
    out = run(venv, str(venv / "bin" / "python"), "-c", program)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"vm01": ["GreeterVM", "vm01 greets on lab"], "vm02": ["DefaultVM", None]}
