"""First page of every portal screen in headless Chromium, on a served demo home (issue 12: "under 1 s").

Usage::

    massalia demo --patients 100000 --no-serve          # with MASSALIA_HOME=DIR: the home measured here
    python benchmarks/portal_pages.py --home DIR [--runs 5] [--json out.json] [--shots FOLDER]

``massalia serve`` runs in its own process on a free 127.0.0.1 port, as a user would start it; Debian's Chromium
(Playwright with the system browser) signs in through the sign-in form as each demo account and opens every
screen its navigation offers (the screens the account may not open are listed, not measured). A screen's first
page is done when the browser has fetched the page, its scripts, and every data request the page made on its own
(the network stays idle for half a second): the figure is the time from navigation start to the end of the last
of those responses plus one painted frame, read from the browser's Performance API. Each figure is the median
and the maximum of ``--runs`` cold openings (a fresh browser context each: no cached scripts, no kept state),
after one warm-up opening.

The peer, in the same run: the portal's static shell (the HTML, its CSS and scripts, no data) on the same
server, which is the floor any screen pays before its data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-extensions",
]  # fmt: skip

DONE = """() => {
  const start = performance.getEntriesByType('navigation')[0];
  const ends = performance.getEntriesByType('resource').map(e => e.responseEnd);
  return new Promise(ok => requestAnimationFrame(() => ok({
    last: Math.max(start.responseEnd, ...ends), requests: ends.length,
    data: performance.getEntriesByType('resource').filter(e => e.name.includes('/api/')).length,
  })));
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    """``massalia serve`` on ``home``, waited for until it answers."""
    env = {**os.environ, "MASSALIA_HOME": str(home)}
    massalia = shutil.which("massalia") or str(Path(sys.executable).parent / "massalia")
    process = subprocess.Popen([massalia, "serve", "--port", str(port), "--log-level", "warning"], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/portal/signin", timeout=2).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("massalia serve did not answer within 60 s")


def accounts(home: Path) -> dict[str, tuple[str, str]]:
    """The demo's accounts by role, from the file ``massalia demo`` writes (``username role password``)."""
    found: dict[str, tuple[str, str]] = {}
    for line in (home / "demo-accounts.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        username, _, password = line.split()[:3]
        found[username.split(".")[0]] = (username, password)
    return found


def open_cold(browser: Any, base: str, credentials: tuple[str, str], path: str, shots: Path | None) -> dict[str, Any]:
    """Sign in in a fresh context, then open ``path`` and time its first page."""
    context = browser.new_context(base_url=base, locale="fr-FR")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto("/portal/signin")
    page.fill("input[name=username]", credentials[0])
    page.fill("input[name=password]", credentials[1])
    page.click("#signin-submit")
    page.wait_for_selector("#current-user")
    page.goto(path, wait_until="networkidle")
    timing = page.evaluate(DONE)
    if shots is not None:
        page.screenshot(path=str(shots / f"{path.strip('/').replace('/', '-')}.png"), full_page=True)
    context.close()
    return {"ms": float(timing["last"]), "requests": timing["requests"], "data": timing["data"], "errors": errors}


def screens(browser: Any, base: str, credentials: tuple[str, str]) -> list[str]:
    """The screens the account's navigation offers (the shell lists only what the account may open)."""
    context = browser.new_context(base_url=base)
    page = context.new_page()
    page.goto("/portal/signin")
    page.fill("input[name=username]", credentials[0])
    page.fill("input[name=password]", credentials[1])
    page.click("#signin-submit")
    page.wait_for_selector("#current-user")
    links = page.eval_on_selector_all("nav a[href^='/portal/']", "as => as.map(a => a.getAttribute('href'))")
    context.close()
    return sorted({link for link in links if link not in ("/portal/", "/portal/signout")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--shots", type=Path, help="save one screenshot of every screen here")
    parser.add_argument("--only", default="", help="measure only the screens whose path contains this")
    args = parser.parse_args()
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = serve(args.home, port)
    base = f"http://127.0.0.1:{port}"
    results: list[dict[str, Any]] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            people = accounts(args.home)
            shell = "/portal/"
            for role, credentials in people.items():
                for path in [shell, *screens(browser, base, credentials)]:
                    if args.only not in path and path != shell:
                        continue
                    open_cold(browser, base, credentials, path, None)  # warm-up: server caches, page compile
                    runs = [open_cold(browser, base, credentials, path, args.shots) for _ in range(args.runs)]
                    times = [run["ms"] for run in runs]
                    errors = sorted({error for run in runs for error in run["errors"]})
                    row = {
                        "role": role, "screen": path, "median_ms": statistics.median(times), "max_ms": max(times),
                        "data_requests": runs[-1]["data"], "console_errors": errors,
                    }  # fmt: skip
                    results.append(row)
                    flag = "" if row["max_ms"] < 1000 else "   over 1 s"
                    print(f"  {role:<11} {path:<32} median {row['median_ms']:7.0f} ms  max {row['max_ms']:7.0f} ms"
                          f"  ({row['data_requests']} data requests){flag}", flush=True)  # fmt: skip
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    floor = statistics.median(r["median_ms"] for r in results if r["screen"] == "/portal/")
    worst = max(results, key=lambda r: r["max_ms"])
    print(f"Screens measured: {len(results)}; the static shell (peer) {floor:.0f} ms; "
          f"slowest {worst['role']} {worst['screen']} median {worst['median_ms']:.0f} ms, max {worst['max_ms']:.0f} ms "
          f"({worst['max_ms'] / floor:.1f}x the shell); target < 1,000 ms: "
          f"{'met' if worst['max_ms'] < 1000 else 'NOT met'}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
