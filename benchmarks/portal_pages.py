"""First page of every portal screen in headless Chromium, on a served demo home (issue 12: "under 1 s").

Usage::

    massalia demo --patients 100000 --no-serve          # with MASSALIA_HOME=DIR: the home measured here
    python benchmarks/portal_pages.py --home DIR [--runs 5] [--json out.json] [--shots FOLDER]
        [--toggles 6] [--users 4 --rounds 3] [--only SCREEN]

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

``--toggles N`` (default 6; 0 to skip): **the count refresh while editing** (issue 12: "under 300 ms"). Each account
that may open the cohort builder builds a cohort in it as a person does (a cancer diagnosis as entry, two inclusion
rules: TNM stage, treatment line), then switches the rules on and off ``N`` times in patterns the page has not asked
before (the page shows a pattern seen before without a request): the figure is click → the new count shown
(median, max), and the ``/cohorts/count`` request itself (from the browser's resource timing).

``--users N`` (with ``--rounds R``): **N people at once** on one ``massalia serve``: the three demo accounts and, from
the fourth, more researchers (``benchN.researcher`` accounts the benchmark adds once, as the operator, with their
passwords in ``<home>/benchmark-accounts.txt``, mode 0600). One browser, one context per person, signed in once; each
opens every screen of its navigation ``R`` times (each person starts at a different screen, so different screens
overlap), a new tab each time in the same context (its scripts are then cached, as for a person moving between
screens). p50 and p90 per screen and role, and the p50 of when the last script or style arrived (from the context's
cache: the shell links them under the build hash, ``immutable``; it includes waiting for the API calls a page makes
before it loads a module) and of each opening's slowest API request (the server's share).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright
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
    api: Math.max(0, ...performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'))
      .map(e => e.responseEnd - e.startTime)),
    assets: Math.max(start.responseEnd, ...performance.getEntriesByType('resource')
      .filter(e => !e.name.includes('/api/')).map(e => e.responseEnd)),
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


def sign_in(page: Any, credentials: tuple[str, str]) -> None:
    """Sign in through the sign-in form, as a person does."""
    page.goto("/portal/signin")
    page.fill("input[name=username]", credentials[0])
    page.fill("input[name=password]", credentials[1])
    page.click("#signin-submit")
    page.wait_for_selector("#current-user")


def open_cold(browser: Any, base: str, credentials: tuple[str, str], path: str, shots: Path | None) -> dict[str, Any]:
    """Sign in in a fresh context, then open ``path`` and time its first page."""
    context = browser.new_context(base_url=base, locale="fr-FR")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sign_in(page, credentials)
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
    sign_in(page, credentials)
    links = page.eval_on_selector_all("nav a[href^='/portal/']", "as => as.map(a => a.getAttribute('href'))")
    context.close()
    return sorted({link for link in links if link not in ("/portal/", "/portal/signout")})


# -- the count refresh while editing (cohort builder, rule switches) --------------------------------------------
TOGGLE = """async (index) => {
  const old = document.getElementById('count-value');
  if (old) old.dataset.stale = '1';
  const start = performance.now();
  document.querySelector(`[data-rule-toggle='${index}']`).click();
  await new Promise((ok, fail) => {
    const check = () => {
      const shown = document.getElementById('count-value');
      if (shown && !shown.dataset.stale) ok();
      else if (performance.now() - start > 30000) fail(new Error('no count within 30 s'));
      else requestAnimationFrame(check);
    };
    check();
  });
  await new Promise((ok) => requestAnimationFrame(ok));
  const asked = performance.getEntriesByType('resource')
    .filter((e) => e.name.endsWith('/api/v1/cohorts/count') && e.startTime >= start);
  return { shown: performance.now() - start, request: asked.length ? asked[0].responseEnd - asked[0].startTime : null };
}"""
SETTLED = """n => Number(document.getElementById('results')?.dataset.sequence || 0) > n
  && document.getElementById('results').getAttribute('aria-busy') === 'false'"""
SWITCHES = (0, 1, 0)  # from both rules on: off/on, off/off, on/off (the fourth click would repeat on/on)


def _settled(page: Any, after: int) -> int:
    page.wait_for_function(SETTLED, arg=after, timeout=60_000)
    return int(page.get_attribute("#results", "data-sequence") or 0)


def build_cohort(page: Any) -> int:
    """A cancer diagnosis as entry and two rules (TNM stage, treatment line), as a person builds it."""
    page.goto("/portal/health/cohorts")
    page.wait_for_selector("#cohort-editor #entry-kind")
    seq = _settled(page, 0)
    page.select_option("#entry-kind", "CancerDiagnosis")
    page.click("#entry-kind-add")
    seq = _settled(page, seq)
    for index, kind in enumerate(("TnmStage", "TreatmentLine")):
        page.click("#add-rule")
        page.fill(f"[data-rule-name='{index}']", f"rule {index}")
        page.select_option(f"#rule-kind-{index}", kind)
        page.click(f"#rule-kind-{index}-add")
        seq = _settled(page, seq)
    return seq


def count_refresh(browser: Any, base: str, credentials: tuple[str, str], toggles: int) -> dict[str, Any]:
    """Click → new count shown after a rule switch, ``toggles`` times (patterns the page has not asked yet)."""
    shown: list[float] = []
    requests: list[float] = []
    while len(shown) < toggles:
        context = browser.new_context(base_url=base, locale="fr-FR")
        page = context.new_page()
        sign_in(page, credentials)
        seq = build_cohort(page)
        for index in SWITCHES[: toggles - len(shown)]:
            timing = page.evaluate(TOGGLE, index)
            shown.append(float(timing["shown"]))
            if timing["request"] is not None:
                requests.append(float(timing["request"]))
            seq = _settled(page, seq)
        context.close()
    return {
        "median_ms": statistics.median(shown), "max_ms": max(shown),
        "request_median_ms": statistics.median(requests) if requests else None,
        "request_max_ms": max(requests) if requests else None,
    }  # fmt: skip


# -- several people at once --------------------------------------------------------------------------------------
def more_researchers(home: Path, wanted: int) -> list[tuple[str, str]]:
    """``wanted`` extra researcher accounts (``benchN.researcher``), added once by the operator, then reused."""
    file = home / "benchmark-accounts.txt"
    known = [tuple(line.split()[:2]) for line in file.read_text(encoding="utf-8").splitlines()] if file.exists() else []
    massalia = shutil.which("massalia") or str(Path(sys.executable).parent / "massalia")
    env = {**os.environ, "MASSALIA_HOME": str(home)}
    while len(known) < wanted:
        username, password = f"bench{len(known) + 2}.researcher", secrets.token_urlsafe(18)
        subprocess.run([massalia, "user", "add", username, "--role", "researcher", "--password-stdin"],
                       input=password.encode(), env=env, check=True, capture_output=True)  # fmt: skip
        known.append((username, password))
        file.touch(mode=0o600)
        file.write_text("".join(f"{u} {p}\n" for u, p in known), encoding="utf-8")
    return [(str(u), str(p)) for u, p in known[:wanted]]


async def _person(browser: Any, base: str, role: str, credentials: tuple[str, str], rounds: int, offset: int,
                  start: asyncio.Barrier, found: list[dict[str, Any]]) -> None:  # fmt: skip
    context = await browser.new_context(base_url=base, locale="fr-FR")
    page = await context.new_page()
    await page.goto("/portal/signin")
    await page.fill("input[name=username]", credentials[0])
    await page.fill("input[name=password]", credentials[1])
    await page.click("#signin-submit")
    await page.wait_for_selector("#current-user")
    links = await page.eval_on_selector_all("nav a[href^='/portal/']", "as => as.map(a => a.getAttribute('href'))")
    paths = sorted({link for link in links if link not in ("/portal/", "/portal/signout")})
    paths = paths[offset % len(paths) :] + paths[: offset % len(paths)]
    for path in paths:  # warm-up, alone: this person's scripts in the context's cache
        await page.goto(path, wait_until="networkidle")
    await page.close()
    await start.wait()
    for _ in range(rounds):
        for path in paths:
            page = await context.new_page()
            await page.goto(path, wait_until="networkidle")
            timing = await page.evaluate(DONE)
            found.append({"role": role, "screen": path, "ms": float(timing["last"]), "api_ms": float(timing["api"]),
                          "assets_ms": float(timing["assets"])})  # fmt: skip
            await page.close()
    await context.close()


async def _together(base: str, people: list[tuple[str, tuple[str, str]]], rounds: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        start = asyncio.Barrier(len(people))  # every person signed in and warmed up: warm-ups are not measured
        tasks = [asyncio.create_task(_person(browser, base, role, credentials, rounds, 3 * i, start, found))
                 for i, (role, credentials) in enumerate(people)]  # fmt: skip
        await asyncio.gather(*tasks)
        await browser.close()
    return found


def together(base: str, people: list[tuple[str, tuple[str, str]]], rounds: int) -> list[dict[str, Any]]:
    """p50 / p90 / max of each screen per role, ``people`` opening their screens at the same time."""
    found = asyncio.run(_together(base, people, rounds))
    rows = []
    key = lambda item: (item["role"], item["screen"])  # noqa: E731 (a sort and group key)
    for (role, screen), group in itertools.groupby(sorted(found, key=key), key=key):
        items = list(group)
        times = sorted(item["ms"] for item in items)
        rows.append({"role": role, "screen": screen, "p50_ms": statistics.median(times),
                     "p90_ms": times[min(len(times) - 1, round(0.9 * (len(times) - 1)))], "max_ms": times[-1],
                     "slowest_api_p50_ms": statistics.median(item["api_ms"] for item in items),
                     "assets_p50_ms": statistics.median(item["assets_ms"] for item in items),
                     "openings": len(times)})  # fmt: skip
    return rows


def each_screen(browser: Any, base: str, people: dict[str, tuple[str, str]], args: Any) -> list[dict[str, Any]]:
    """Every screen of every account opened cold ``--runs`` times (after a warm-up): median and max."""
    results: list[dict[str, Any]] = []
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
    if results:
        floor = statistics.median(r["median_ms"] for r in results if r["screen"] == shell)
        worst = max(results, key=lambda r: r["max_ms"])
        print(f"Screens measured: {len(results)}; the static shell (peer) {floor:.0f} ms; slowest {worst['role']} "
              f"{worst['screen']} median {worst['median_ms']:.0f} ms, max {worst['max_ms']:.0f} ms "
              f"({worst['max_ms'] / floor:.1f}x the shell); target < 1,000 ms: "
              f"{'met' if worst['max_ms'] < 1000 else 'NOT met'}", flush=True)  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5, help="cold openings of each screen (0: skip)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--shots", type=Path, help="save one screenshot of every screen here")
    parser.add_argument("--only", default="", help="measure only the screens whose path contains this")
    parser.add_argument("--toggles", type=int, default=6, help="rule switches timed per account (0: skip)")
    parser.add_argument("--users", type=int, default=0, help="also N people at once (3 demo accounts + researchers)")
    parser.add_argument("--rounds", type=int, default=3, help="with --users: times each person opens each screen")
    args = parser.parse_args()
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    people = accounts(args.home)
    crowd = [*people.items()][: args.users]
    extra = more_researchers(args.home, max(0, args.users - len(crowd)))
    crowd += [(f"researcher{n}", account) for n, account in enumerate(extra, start=2)]
    port = free_port()
    server = serve(args.home, port)
    base = f"http://127.0.0.1:{port}"
    figures: dict[str, Any] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            figures["screens"] = each_screen(browser, base, people, args) if args.runs > 0 else []
            figures["count_refresh"] = {}
            for role, credentials in people.items() if args.toggles > 0 else ():
                if "/portal/health/cohorts" not in screens(browser, base, credentials):
                    continue
                found = count_refresh(browser, base, credentials, args.toggles)
                figures["count_refresh"][role] = found
                flag = "" if found["median_ms"] < 300 else "   over 300 ms"
                print(f"  {role:<11} count refresh after a rule switch: median {found['median_ms']:.0f} ms, max "
                      f"{found['max_ms']:.0f} ms (the /cohorts/count request: median {found['request_median_ms']:.0f}"
                      f" ms, max {found['request_max_ms']:.0f} ms){flag}", flush=True)  # fmt: skip
            browser.close()
        if crowd:
            figures["together"] = together(base, crowd, args.rounds)
            names = " + ".join(role for role, _ in crowd)
            print(f"{len(crowd)} people at once ({names}), {args.rounds} rounds each:")
            for row in figures["together"]:
                print(f"  {row['role']:<11} {row['screen']:<32} p50 {row['p50_ms']:7.0f} ms  p90 "
                      f"{row['p90_ms']:7.0f} ms  max {row['max_ms']:7.0f} ms  (p50 of: last script or style "
                      f"{row['assets_p50_ms']:5.0f} ms, slowest API request {row['slowest_api_p50_ms']:5.0f} ms; "
                      f"{row['openings']} openings)",
                      flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
