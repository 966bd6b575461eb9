"""The one HTML document every portal address answers with: the page's module is loaded by the browser.

No inline script or style (the content security policy allows scripts and styles from the app only): the
document links the stylesheet and the shell's ES module, and carries the portal's configuration as a JSON
data block (``type="application/json"``, never executed), escaped so that no value can close the element.
Every asset is linked under ``static``, the versioned prefix the routes give (``/static/v/<build hash>/``), and
``modulepreload`` links fetch the shell's modules (and the page's) in parallel rather than one import level after
the other.

Examples
--------
>>> document = render_shell({"page": "portal.home"}, title="Massalia")
>>> '<script type="module" src="/static/js/app.js"></script>' in document
True
>>> "</script><script>" in render_shell({"x": "</script><script>alert(1)</script>"}, title="t")
False
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

STYLESHEET = "portal.css"
ENTRY_MODULE = "js/app.js"
FAVICON = "favicon.svg"
CONFIG_ELEMENT = "massalia-portal"
"""The id of the JSON data block the shell's script reads its configuration from."""


def config_json(config: dict[str, Any]) -> str:
    r"""``config`` as JSON safe inside a ``<script type="application/json">`` element (``<``, ``>``, ``&`` escaped).

    Examples
    --------
    >>> config_json({"a": "<b>&"})
    '{"a": "\\u003cb\\u003e\\u0026"}'
    """
    text = json.dumps(config, ensure_ascii=False, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_shell(
    config: dict[str, Any], *, title: str, lang: str = "fr", static: str = "/static/", preload: Sequence[str] = ()
) -> str:
    """The HTML shell: head with the stylesheet, configuration and module; a skip link, banner and main area.

    Parameters
    ----------
    static
        The address prefix of the assets (``/static/v/<build hash>/`` from the routes).
    preload
        Asset keys of ES modules to fetch at once (``<link rel="modulepreload">``), besides the entry module.
    """
    base = html.escape(static)
    preloads = "".join(
        f'<link rel="modulepreload" href="{base}{html.escape(name)}">\n' for name in dict.fromkeys(preload)
    )
    return f"""<!doctype html>
<html lang="{html.escape(lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>{html.escape(title)}</title>
<link rel="icon" href="{base}{FAVICON}" type="image/svg+xml">
<link rel="stylesheet" href="{base}{STYLESHEET}">
{preloads}<script type="application/json" id="{CONFIG_ELEMENT}">{config_json(config)}</script>
<script type="module" src="{base}{ENTRY_MODULE}"></script>
</head>
<body>
<a class="skip-link" href="#main">Aller au contenu / Skip to content</a>
<header class="banner" id="banner"></header>
<main id="main" tabindex="-1"><p class="loading" role="status">Chargement… / Loading…</p></main>
<footer class="footer" id="footer"></footer>
</body>
</html>
"""
