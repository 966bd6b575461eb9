"""Domain plug-ins: one small registry type, and what each domain contributes when an interface starts.

A domain (health, open data, public safety, or a third party's) is a package with one entry module. That
module exposes ``DOMAIN``, an object with a ``name`` and a ``contribute(contributions)`` method. When the
HTTP app or the command line is created (never as an import side effect), :func:`load_domains` imports the
built-in entry modules (:data:`BUILTIN_DOMAINS`), then those other packages declare in the
:data:`ENTRY_POINT_GROUP` entry-point group, and asks each to contribute its API routers, CLI groups, rights
file, project-scope model, connectors, quality checks, pipes and analyses. Built-ins register exactly the way
an extension does (datasette's ``DEFAULT_PLUGINS``).

The core stays free of web and command-line libraries: routers and CLI groups are kept as opaque objects
here and used by the interface that asked for them.

Examples
--------
>>> registry: Registry[int] = Registry("answer")
>>> registry.register("life", 42)
42
>>> registry.get("life")
42
>>> registry.get("universe")
Traceback (most recent call last):
...
massalia.plugins.RegistryError: unknown answer 'universe' (known: life)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")

ENTRY_POINT_GROUP = "massalia.domains"
"""Third-party domains declare their entry module here (``[project.entry-points."massalia.domains"]``)."""

BUILTIN_DOMAINS: tuple[str, ...] = ("massalia.health.plugin", "massalia.opendata.plugin", "massalia.safety.plugin")
"""Entry modules of the domains shipped with Massalia, loaded like any extension."""

DOMAINS_SETTING = "MASSALIA_DOMAINS"
"""A deployment's own domains: comma-separated entry modules, loaded after the built-in and installed ones."""

MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

PAGE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,63})+$")
PAGE_PATH = re.compile(r"^/(portal(/[a-z0-9][a-z0-9_-]{0,63})+)?$")
MODULE_PATH = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_.-]*)*\.js$")


class RegistryError(LookupError):
    """An unknown name was asked for, or a name was registered twice; the message names the known entries."""


class Registry(Generic[T]):
    """Named entries of one kind, in registration order; duplicates are refused.

    Parameters
    ----------
    kind
        What the entries are ("connector", "quality check"...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name`` and return it; a name already taken raises :class:`RegistryError`."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries:
            raise RegistryError(f"duplicate {self.kind} {name!r} (already registered: {self._known()})")
        self._entries[name] = item
        return item

    def get(self, name: str) -> T:
        """The entry named ``name``; an unknown name raises :class:`RegistryError` naming the known ones."""
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(f"unknown {self.kind} {name!r} (known: {self._known()})") from None

    def _known(self) -> str:
        return ", ".join(self._entries) or "none"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs in registration order."""
        return list(self._entries.items())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, [{self._known()}])"


@dataclass(frozen=True)
class PortalPage:
    """One page of the web portal and its navigation entry; the portal (``massalia.portal``) serves it.

    A page is an ES module the portal's shell imports in the browser; it reaches data only through the HTTP
    API, like any other client. ``right`` only decides whether the navigation entry is shown (the API decides
    what the page may read); ``None`` shows it to every signed-in user.

    Parameters
    ----------
    name
        ``<domain>.<page>`` (``health.feasibility``); the core's pages are ``portal.<page>``.
    path
        The page's address: ``/portal/<domain>/<page>`` for a domain's page (``/`` is the core's home).
    label_fr, label_en
        The navigation entry's label in French and English.
    module
        The page's ES module, relative to the domain's asset folder (:meth:`Contributions.add_portal_assets`).
    right
        The action a user's roles must allow for the entry to be shown (``health.mart.count``), or ``None``.
    group
        The navigation group the entry is listed under (``research``, ``account``...).
    nav
        Whether the page has a navigation entry at all (the sign-in page has none).
    public
        Whether an anonymous visitor may stay on the page (open data's catalog); the API still decides what
        it may read. Default: sign-in first.

    Examples
    --------
    >>> PortalPage("health.feasibility", "/portal/health/feasibility", "Faisabilité", "Feasibility",
    ...            "feasibility.js", right="health.mart.count").group
    'research'
    >>> PortalPage("health.x", "/portal/../etc", "Ixe", "Ex", "x.js")
    Traceback (most recent call last):
    ...
    massalia.plugins.RegistryError: portal page 'health.x': path '/portal/../etc' is not /portal/<segment>/... ...
    """

    name: str
    path: str
    label_fr: str
    label_en: str
    module: str
    right: str | None = None
    group: str = "research"
    nav: bool = True
    public: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not PAGE_NAME.match(self.name):
            raise RegistryError(f"a portal page's name is '<domain>.<page>' in lowercase (got {self.name!r})")
        where = f"portal page {self.name!r}"
        if not isinstance(self.path, str) or not PAGE_PATH.match(self.path):
            raise RegistryError(
                f"{where}: path {self.path!r} is not /portal/<segment>/... (lowercase letters, digits, '-' and '_')"
            )
        if not isinstance(self.module, str) or ".." in self.module or not MODULE_PATH.match(self.module):
            raise RegistryError(f"{where}: module {self.module!r} is not a relative path to a .js file")
        for label in (self.label_fr, self.label_en, self.group):
            if not isinstance(label, str) or not label.strip() or len(label) > 80:
                raise RegistryError(f"{where}: labels and group are non-empty text of at most 80 characters")
        if self.right is not None and (not isinstance(self.right, str) or not PAGE_NAME.match(self.right)):
            raise RegistryError(f"{where}: right {self.right!r} is not an action name ('<area>.<verb>')")


@runtime_checkable
class Domain(Protocol):
    """What a domain's entry module exposes as ``DOMAIN``."""

    name: str

    def contribute(self, contributions: Contributions) -> None:
        """Register the domain's parts into ``contributions`` (called once per app or CLI)."""


@dataclass(frozen=True)
class Contributed(Generic[T]):
    """An entry and the domain that contributed it."""

    domain: str
    item: T


@dataclass
class Contributions:
    """Everything the domains contributed, collected by :func:`load_domains`.

    Each domain calls the ``add_*`` methods from its ``contribute``; names of CLI groups, scope models,
    connectors, quality checks, pipes and analyses are global and refused when taken twice.
    """

    domains: Registry[Domain] = field(default_factory=lambda: Registry("domain"))
    routers: list[Contributed[Any]] = field(default_factory=list)
    cli_groups: Registry[Contributed[Any]] = field(default_factory=lambda: Registry("CLI group"))
    rights: Registry[Path] = field(default_factory=lambda: Registry("rights file"))
    scope_models: Registry[Contributed[Any]] = field(default_factory=lambda: Registry("project-scope model"))
    connectors: Registry[Contributed[Any]] = field(default_factory=lambda: Registry("connector"))
    quality_checks: Registry[Contributed[Any]] = field(default_factory=lambda: Registry("quality check"))
    pipes: Registry[Contributed[Any]] = field(default_factory=lambda: Registry("pipe"))
    analyses: Registry[Contributed[Any]] = field(default_factory=lambda: Registry("analysis"))
    portal_pages: Registry[Contributed[PortalPage]] = field(default_factory=lambda: Registry("portal page"))
    portal_assets: Registry[Path] = field(default_factory=lambda: Registry("portal asset folder"))
    _current: str | None = None

    def _domain(self) -> str:
        if self._current is None:
            raise RegistryError("contributions are made from a domain's contribute() only")
        return self._current

    def add_router(self, router: Any) -> None:
        """An API router (a FastAPI ``APIRouter``), mounted under the API prefix."""
        self.routers.append(Contributed(self._domain(), router))

    def add_cli_group(self, name: str, group: Any) -> None:
        """A command group (a Typer app) mounted as ``massalia <name>``."""
        self.cli_groups.register(name, Contributed(self._domain(), group))

    def add_rights(self, path: Path) -> None:
        """The domain's rights file: its actions must be named ``<domain>.<area>.<verb>``."""
        self.rights.register(self._domain(), Path(path))

    def add_scope_model(self, name: str, model: Any) -> None:
        """A project-scope model (what a project of this domain may be restricted to)."""
        self.scope_models.register(name, Contributed(self._domain(), model))

    def add_connector(self, name: str, connector: Any) -> None:
        """A source connector."""
        self.connectors.register(name, Contributed(self._domain(), connector))

    def add_quality_check(self, name: str, check: Any) -> None:
        """A data quality check (or a family of them)."""
        self.quality_checks.register(name, Contributed(self._domain(), check))

    def add_pipe(self, name: str, pipe: Any) -> None:
        """A pipeline transform or text pipe."""
        self.pipes.register(name, Contributed(self._domain(), pipe))

    def add_analysis(self, name: str, analysis: Any) -> None:
        """An analysis."""
        self.analyses.register(name, Contributed(self._domain(), analysis))

    def add_portal_page(self, page: PortalPage) -> None:
        """A page of the web portal with its navigation entry, named ``<domain>.<page>``, at ``/portal/<domain>/...``.

        Its module is looked up in the domain's asset folder (:meth:`add_portal_assets`) when the portal starts.
        """
        domain = self._domain()
        if not page.name.startswith(f"{domain}."):
            raise RegistryError(f"portal page {page.name!r} of domain {domain!r} must be named '{domain}.<page>'")
        if not page.path.startswith(f"/portal/{domain}/"):
            raise RegistryError(f"portal page {page.name!r}: its path {page.path!r} must start with /portal/{domain}/")
        self.portal_pages.register(page.name, Contributed(domain, page))

    def add_portal_assets(self, folder: Path) -> None:
        """The domain's folder of page modules, message catalogues and styles, served at ``/static/domains/<name>/``."""
        folder = Path(folder)
        if not folder.is_dir():
            raise RegistryError(f"domain {self._domain()!r}: portal asset folder {folder} does not exist")
        self.portal_assets.register(self._domain(), folder)

    def accept(self, domain: Domain) -> None:
        """Register ``domain`` and let it contribute; a duplicate or malformed domain is refused."""
        name = getattr(domain, "name", None)
        if not isinstance(name, str) or not DOMAIN_NAME.match(name):
            raise RegistryError(f"a domain's name is lowercase letters, digits and '_' (got {name!r})")
        if not callable(getattr(domain, "contribute", None)):
            raise RegistryError(f"domain {name!r} has no contribute(contributions) method")
        self.domains.register(name, domain)
        self._current = name
        try:
            domain.contribute(self)
        finally:
            self._current = None


def _entry_module_domain(module_name: str) -> Domain:
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is None or not module_name.startswith(error.name):
            raise  # the entry module exists but one of its own imports is missing: show that
        raise RegistryError(
            f"domain entry module {module_name!r} cannot be found (from the built-ins, the {ENTRY_POINT_GROUP!r} "
            f"entry points or {DOMAINS_SETTING})"
        ) from None
    domain: Domain | None = getattr(module, "DOMAIN", None)  # its name and contribute() are checked by accept()
    if domain is None:
        raise RegistryError(f"domain entry module {module_name!r} has no DOMAIN")
    return domain


def configured_domains(environ: Mapping[str, str] | None = None) -> list[str]:
    """The entry modules named by the ``MASSALIA_DOMAINS`` setting (comma-separated, blanks ignored).

    Examples
    --------
    >>> configured_domains({"MASSALIA_DOMAINS": " acme.plugin, ,city.domain "})
    ['acme.plugin', 'city.domain']
    >>> configured_domains({"MASSALIA_DOMAINS": "acme/plugin"})
    Traceback (most recent call last):
    ...
    massalia.plugins.RegistryError: MASSALIA_DOMAINS: 'acme/plugin' is not a module name (dotted Python identifiers)
    """
    raw = (os.environ if environ is None else environ).get(DOMAINS_SETTING, "")
    modules = [part.strip() for part in raw.split(",") if part.strip()]
    for module in modules:
        if len(module) > 200 or not MODULE_NAME.match(module):  # a bound on a setting read from the environment
            raise RegistryError(f"{DOMAINS_SETTING}: {module!r} is not a module name (dotted Python identifiers)")
    return modules


def discovered_entry_modules() -> list[str]:
    """Entry modules of installed third-party domains (the :data:`ENTRY_POINT_GROUP` group), sorted by name."""
    return [point.value for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda point: point.name)]


def load_domains(extra: Iterable[str] = (), *, builtins: Iterable[str] = BUILTIN_DOMAINS) -> Contributions:
    """Import every domain's entry module and collect what they contribute.

    Parameters
    ----------
    extra
        More entry modules, after the built-ins and the installed ones (tests, a deployment's own domain).
    builtins
        The built-in entry modules (default :data:`BUILTIN_DOMAINS`).

    Raises
    ------
    RegistryError
        A domain registered twice, an entry module without ``DOMAIN``, or two domains contributing the
        same named part.
    """
    contributions = Contributions()
    seen: set[str] = set()
    for module_name in [*builtins, *discovered_entry_modules(), *extra]:
        if module_name not in seen:  # a built-in may also be declared as an entry point: load it once
            seen.add(module_name)
            contributions.accept(_entry_module_domain(module_name))
    return contributions
