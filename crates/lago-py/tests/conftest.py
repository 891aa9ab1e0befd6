"""Shared set-up of the SDK's tests: the `tiny` template (built once per target directory with
the `lago` binary, under the same lock as the Rust end-to-end tests), and a lago configuration
of the test's own: TCG, no outbound traffic, leases and store in a temporary directory."""

import fcntl
import hashlib
import logging
import os
import subprocess
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO_ROOT = Path(__file__).resolve().parents[3]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))


def lago_binary() -> Path:
    """The `lago` CLI the set-up built (`LAGO_BIN` overrides)."""
    path = Path(os.environ.get("LAGO_BIN", TARGET / "debug" / "lago"))
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: run `bash scripts/setup.sh --tests` first")
    return path


def shared_dir() -> Path:
    path = TARGET / "tmp" / "lago-e2e"
    path.mkdir(parents=True, exist_ok=True)
    return path


def recipe_fingerprint() -> str:
    """A digest of lago's template recipes: a changed recipe gets a repository of its own."""
    digest = hashlib.sha1()
    for f in sorted((REPO_ROOT / "crates" / "lago" / "src" / "template").rglob("*")):
        if f.is_file():
            digest.update(f.name.encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:8]


@pytest.fixture(scope="session")
def tiny_repo() -> Path:
    shared = shared_dir()
    repo = shared / f"repo-py-{recipe_fingerprint()}"
    with open(shared / "repo-py.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (repo / "repo.metadata").is_file():
            env = {"PATH": os.environ["PATH"], "HOME": str(shared), "CI": "true",
                   "LAGO__TEMPLATE__BUILD_CACHE": str(shared / "cache")}
            subprocess.run([str(lago_binary()), "template", "build", "tiny", "--repo-dir", str(repo)],
                           check=True, env=env, cwd=shared, capture_output=True)
    return repo


@pytest.fixture(scope="session", autouse=True)
def lago_config(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """What every test's lago reads: the repository, a store and leases of the session, TCG and
    no outbound traffic (nothing leaves the host)."""
    home = tmp_path_factory.mktemp("lago-home")
    values = {
        "LAGO__INIT__TEMPLATE_REPO_PATH": str(tiny_repo / "repo.metadata"),
        "LAGO__INIT__TEMPLATE_STORE": str(home / "store"),
        "LAGO_LEASE_DIR": str(home / "leases"),
        "LAGO_ACCEL": "tcg",
        "LAGO_VM_OUTBOUND": "false",
        "LAGO_HOST_LEG": "off",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield values
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v

def plugin_ini(pytester, lago_config, init_file: str, extra: str = "") -> None:
    """The pytest.ini of an inner run of the plugin: `lago_init_file` (one file, or several:
    variants), `extra` lines, the test repository and store."""
    pytester.makeini(
        f"""
        [pytest]
        lago_init_file = {init_file}
        {extra}
        lago_init_options =
            template_repo_path={lago_config['LAGO__INIT__TEMPLATE_REPO_PATH']}
            template_store={lago_config['LAGO__INIT__TEMPLATE_STORE']}
        """
    )



def processes_naming(path: Path) -> list:
    """Command lines of processes that name `path`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(cmdline)
    return found


# One `tiny` VM on one management network.
ONE_VM_INIT = """\
domains:
  vm01:
    memory: 256
    nics: [{net: lab}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
nets:
  lab: {management: true}
"""


LAB_INIT = """\
base: &base
  memory: 256
  disks: [{template_name: tiny, type: template, name: root, dev: vda}]
domains:
  vm01:
    <<: *base
    nics: [{net: front}, {net: back}]
    metadata: {role: web}
    artifacts: [/etc/hostname, /var/log]
    groups: [web]
  vm02:
    <<: *base
    nics: [{net: front}, {net: back, ip: 192.168.230.20}]
    metadata: {role: db}
    groups: [db, backup]
nets:
  front: {type: nat, management: true, dns_domain_name: py.test}
  back: {type: nat, gw: 192.168.230.1}
"""


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, lago_config):
    home = tmp_path_factory.mktemp("lab")
    config = home / "LagoInitFile"
    config.write_text(LAB_INIT)
    logfile = home / "custom.log"
    from lago import sdk
    env = sdk.init(config, workdir=home / "work", logfile=logfile, loglevel=logging.DEBUG)
    logging.getLogger("the-test").info("a line the test logged")
    env.start()
    yield env, home, logfile
    env.destroy()
    assert not processes_naming(home / "work"), "destroy left a process behind"
    assert not (home / "work").exists()


