#!/usr/bin/env python3
"""Looks at the built documentation site in a real browser: Debian's Chromium, headless, loads
pages from a local HTTP server (127.0.0.1, a port of its own, in this process) and the DOM it
built (after the pages' scripts ran) is checked:

- the index: its title heading, the sidebar that the site's script fills (the reference's pages
  listed in it), and the demo environment's picture: an SVG with a node for each VM and network;
- the init-file reference: its title and its sections' headings, the table of keys;
- the pictures page: its three pictures, the second with the cut link, the degraded link and
  the partition it shows, the third with a running VM, a paused one, the host and a forwarded
  port.

A screenshot of each page is written to OUT (`index.png`...), which CI keeps as artefacts.
Chromium runs with a fresh profile, no network of its own (no updates, no sync), and is ended with
its process group, so nothing of it is left running.

Usage: python3 scripts/docs/browser_check.py target/book target/book-screenshots
"""

import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Tuple

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--virtual-time-budget=5000"]

#: How long one Chromium run may take.
TIMEOUT = 120


class Dom(HTMLParser):
    """What a check looks at in a DOM: headings, the sidebar's links, the pictures' SVGs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: List[Tuple[str, Dict[str, str]]] = []
        self.headings: List[Tuple[str, str]] = []
        self.sidebar: List[str] = []
        self.pictures: List[Dict[str, List[str]]] = []
        self.table_cells: List[str] = []

    def inside(self, tag: str, cls: Optional[str] = None) -> bool:
        return any(t == tag and (cls is None or cls in a.get("class", "").split()) for t, a in self.stack)

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "svg" and self.inside("div", "lago-picture"):
            self.pictures.append({"title": [], "text": []})
        self.stack.append((tag, values))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            open_tag, _ = self.stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.stack or not data.strip():
            return
        tag = self.stack[-1][0]
        text = data.strip()
        if self.inside("main"):
            for level in ("h1", "h2"):
                if self.inside(level):
                    self.headings.append((level, text))
        if self.inside("mdbook-sidebar-scrollbox") and tag in ("a", "strong", "span"):
            self.sidebar.append(text)
        if self.pictures and self.inside("svg") and tag in ("title", "text"):
            self.pictures[-1][tag].append(text)
        if self.inside("main") and tag == "code" and self.inside("td"):
            self.table_cells.append(text)

    def handle_startendtag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        pass


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("chromium is not installed: `apt-get install chromium` (scripts/docs.sh --check installs it)")


def run_chromium(args: List[str], profile: Path) -> str:
    """Runs Chromium to its end (its whole process group is ended on a timeout)."""
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          start_new_session=True, text=True) as proc:
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise SystemExit(f"chromium did not end within {TIMEOUT} s: {' '.join(cmd)}")
        finally:
            # Helpers (zygote, GPU, renderers) are in its process group: none outlives it.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if proc.returncode != 0:
        raise SystemExit(f"chromium failed ({proc.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
    return out


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def check_index(dom: Dom) -> List[str]:
    problems = []
    if ("h1", "lago") not in dom.headings:
        problems.append(f"no heading `lago` (headings: {dom.headings})")
    if ("h2", "Where to look") not in dom.headings:
        problems.append("no heading `Where to look`")
    for chapter in ("Getting started", "Init file", "Command line", "Configuration", "Python API", "Rust SDK"):
        if chapter not in dom.sidebar:
            problems.append(f"the sidebar (filled by the site's script) does not list `{chapter}`: {dom.sidebar}")
    if len(dom.pictures) != 1:
        problems.append(f"expected the demo's picture, found {len(dom.pictures)} pictures")
    else:
        titles = dom.pictures[0]["title"]
        for node in ("vm:web", "vm:app", "vm:db", "net:front", "net:back"):
            if node not in titles:
                problems.append(f"the picture has no node {node} (nodes: {titles})")
        if "web" not in dom.pictures[0]["text"]:
            problems.append("the picture does not say `web`")
    return problems


def check_reference(dom: Dom) -> List[str]:
    problems = []
    if ("h1", "Init file") not in dom.headings:
        problems.append(f"no heading `Init file` (headings: {dom.headings})")
    for section in ("The file", "VMs", "NICs", "Disks", "Networks"):
        if ("h2", section) not in dom.headings:
            problems.append(f"no section `{section}`")
    for cell in ("memory", "nics", "template_name", "boot_time_sec: 120"):
        if cell not in dom.table_cells:
            problems.append(f"the table of keys has no `{cell}`")
    return problems


def check_pictures(dom: Dom) -> List[str]:
    problems = []
    if len(dom.pictures) != 3:
        return [f"expected three pictures, found {len(dom.pictures)}"]
    faults = dom.pictures[1]["text"]
    for text in ("cut", "delay 200 ms, loss 5 %", "front · segment 1"):
        if text not in faults:
            problems.append(f"the picture with faults does not say `{text}` ({faults})")
    if not any("partitioned: web | app,db" in t for t in faults):
        problems.append("the picture with faults shows no partition")
    running = dom.pictures[2]["text"]
    for text in ("this host", "running · tiny", "paused · tiny", "127.0.0.1:40123 → 8080"):
        if text not in running:
            problems.append(f"the running environment's picture does not say `{text}` ({running})")
    return problems


#: The pages looked at: path in the site, screenshot name, check, height of the screenshot (the
#: pictures page's holds both pictures).
PAGES = [("index.html", "index", check_index, 1600), ("reference/init-file.html", "init-file", check_reference, 1600),
         ("pictures.html", "pictures", check_pictures, 3400)]


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    site, shots = Path(argv[0]).resolve(), Path(argv[1])
    shots.mkdir(parents=True, exist_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    failed = False
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for path, name, check, height in PAGES:
            with tempfile.TemporaryDirectory(prefix="lago-chromium-") as profile:
                dom_text = run_chromium(["--dump-dom", f"{base}/{path}"], Path(profile))
            dom = Dom()
            dom.feed(dom_text)
            problems = check(dom)
            shot = shots / f"{name}.png"
            with tempfile.TemporaryDirectory(prefix="lago-chromium-") as profile:
                run_chromium([f"--screenshot={shot.resolve()}", f"--window-size=1280,{height}", f"{base}/{path}"],
                             Path(profile))
            if not shot.is_file() or shot.stat().st_size == 0:
                problems.append(f"no screenshot written to {shot}")
            for p in problems:
                print(f"browser: {path}: {p}", file=sys.stderr)
            failed |= bool(problems)
            print(f"browser: {path}: {'FAILED' if problems else 'ok'} ({len(dom.headings)} headings, "
                  f"{len(dom.pictures)} pictures; screenshot {shot})", file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
