"""The one HTML document every portal address answers with: the page's module is loaded by the browser.

No inline script or style (the content security policy allows scripts and styles from the app only): the
document links the stylesheet and the shell's ES module, and carries the portal's configuration as a JSON
data block (``type="application/json"``, never executed), escaped so that no value can close the element.

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
from typing import Any

STYLESHEET = "/static/portal.css"
ENTRY_MODULE = "/static/js/app.js"
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


def render_shell(config: dict[str, Any], *, title: str, lang: str = "fr") -> str:
    """The HTML shell: head with the stylesheet, configuration and module; a skip link, banner and main area."""
    return f"""<!doctype html>
<html lang="{html.escape(lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>{html.escape(title)}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{STYLESHEET}">
<link rel="modulepreload" href="/static/js/api.js">
<link rel="modulepreload" href="/static/js/i18n.js">
<link rel="modulepreload" href="/static/js/dom.js">
<script type="application/json" id="{CONFIG_ELEMENT}">{config_json(config)}</script>
<script type="module" src="{ENTRY_MODULE}"></script>
</head>
<body>
<a class="skip-link" href="#main">Aller au contenu / Skip to content</a>
<header class="banner" id="banner"></header>
<main id="main" tabindex="-1"><p class="loading" role="status">Chargement… / Loading…</p></main>
<footer class="footer" id="footer"></footer>
</body>
</html>
"""
