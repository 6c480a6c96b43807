"""The layers of the package, checked on the source (STYLE.md, "never imports").

Every module has a rank; each of its imports of the package (absolute, relative,
``from sseserver import x``, inside a function or under TYPE_CHECKING alike) must
name a module of a lower rank, or a sibling within its own sub-package. Beside the
ranks, the sans-IO layers never import the modules that do I/O or read the clock.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sseserver"

# Lowest first: each row may import only rows above it (and a sub-package its own
# modules). Names are relative to the package; "" is the package itself.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),  # the one exception tree
    # leaves: events, helpers, the page, stream ids, the metrics text
    ("events", "redact", "stopping", "static", "stream_ids", "metrics"),
    ("auth_settings",),
    ("config",),  # frozen settings, and the defaults the lower layers share
    ("core",),  # sans-IO protocol machines: HTTP, SSE, chunked, the stream log, auth
    ("key_ledger", "shared_ledger"),  # what the gate counts, in one process or shared
    ("schema", "failures", "tokens"),  # requests and policies over core
    ("gate",),  # who may call, and what a caller may still spend
    ("formats",),  # normalized events to a wire format's bytes
    ("compat",),  # the compatible APIs' requests and shapes (formats, no providers)
    ("providers",),  # per provider: request, adapter, errors (compat's translations)
    ("routing",),  # a request to its provider targets
    ("lane",),  # sans-IO: the pump's text lane, read by its reader's, adapter's and
    # formatter's promises
    ("pump", "retry"),  # sans-IO: a body to frames; an attempt's outcome to the next step
    ("aio", "fake"),  # the asyncio layer, the fake provider
    ("output",),  # where a relay's frames go: one connection, or a collected answer
    ("fanout",),  # a stream log and its readers
    ("stream_end",),  # how a stream ended, and its log line
    ("relay",),  # one generation, provider to client
    ("streams",),  # the stores of resumable generations (a relay and its readers)
    ("compat_routes",),
    ("gateway",),  # the one place that wires everything
    ("peers",),  # with --workers: the gateway's requests handed between workers
    ("workers",),
    ("server",),
    ("auth_cli",),
    ("",),  # the package's public names, for embedding (lazy imports of server...)
    ("cli",),
    ("__main__",),
)

# Imports from outside the package that a layer never makes: the sans-IO layers do no
# I/O and read no clock (the time comes in as an argument), config reads no process
# state (the CLI passes the environment in).
NEVER_IMPORTS: dict[str, tuple[str, ...]] = {
    "config": ("os", "sys", "asyncio"),
    "core": ("asyncio", "socket", "ssl", "time"),
    "events": ("asyncio",),
    "schema": ("asyncio", "socket", "time"),
    "formats": ("asyncio", "socket"),
    "compat": ("asyncio", "socket"),
    "providers": ("asyncio", "socket", "time"),
    "routing": ("asyncio", "socket", "time"),
    "lane": ("asyncio", "socket", "time"),
    "pump": ("asyncio", "socket", "time"),
    "retry": ("asyncio", "socket", "time"),
}

# Imports the layers do not allow yet, each with why it is still there. The test fails
# when one is gone (so the list shrinks) or a new one appears.
KNOWN: dict[tuple[str, str], str] = {
    # CompatRoutes is handed the Gateway that builds it and types its parameter so;
    # a protocol of what it uses (resolve, start_relay, start_resumable...) would end it.
    ("sseserver.compat_routes", "sseserver.gateway"): "types the Gateway it is given",
    # The gateway is handed the Peers of its worker and types its attribute so.
    ("sseserver.gateway", "sseserver.peers"): "types the Peers it is given",
    # SigV4 signs with the time of the request; the provider reads time.time() by
    # default (a test passes a clock) where the driver could pass it in.
    ("sseserver.providers.bedrock", "time"): "the signing time",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of ours."""
    top, *rest = name.split(".")
    if top != PACKAGE.name:
        return False
    path = PACKAGE.joinpath(*rest)
    return path.is_dir() or path.with_suffix(".py").is_file()


def imports_of(path: Path) -> set[str]:
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, module: str, is_init: bool = False) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, relative imports
    resolved, and each name of ``from package import name`` taken as the submodule it
    is, when it is one."""
    package = module if is_init else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(filter(None, [*parent, base]))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                names.add(submodule if is_module(submodule) else base)
    return names


RANKS: dict[str, int] = {name: rank for rank, row in enumerate(LAYERS) for name in row}


def layer_of(module: str) -> tuple[int, str]:
    """(rank, its row's name): the module's own, or its nearest package's."""
    parts = module.split(".")[1:]
    for end in range(len(parts), 0 if parts else -1, -1):
        name = ".".join(parts[:end])
        if name in RANKS:
            return RANKS[name], name
    raise LookupError(f"{module} has no layer: add it to LAYERS")


def upward_imports(module: str, imported: set[str]) -> list[tuple[str, str]]:
    """The imports of the package that do not point strictly down from ``module``."""
    rank, row = layer_of(module)
    found = []
    for name in imported:
        if name != "sseserver" and not name.startswith("sseserver."):
            continue
        their_rank, their_row = layer_of(name)
        if their_rank < rank or (their_row == row and row and is_package(row)):
            continue
        found.append((module, name))
    return found


def is_package(row: str) -> bool:
    return (PACKAGE / row).is_dir()


def forbidden_imports(module: str, imported: set[str]) -> list[tuple[str, str]]:
    relative = module.removeprefix("sseserver").removeprefix(".")
    found = []
    for layer, banned in NEVER_IMPORTS.items():
        if relative != layer and not relative.startswith(layer + "."):
            continue
        found += [(module, name) for name in sorted(imported)
                  for ban in banned if name == ban or name.startswith(ban + ".")]
    return found


def violations(path: Path) -> list[tuple[str, str]]:
    module, imported = module_name(path), imports_of(path)
    return upward_imports(module, imported) + forbidden_imports(module, imported)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_every_import_points_down(path: Path) -> None:
    assert [pair for pair in violations(path) if pair not in KNOWN] == []


def test_the_known_violations_are_still_there() -> None:
    found = {pair for path in MODULES for pair in violations(path)}
    assert set(KNOWN) - found == set(), "fixed: remove it from KNOWN"


def test_every_layer_names_a_module_of_the_package() -> None:
    for row in LAYERS:
        for name in row:
            assert is_module(f"sseserver.{name}" if name else "sseserver"), name


def test_the_check_itself_catches_a_violation() -> None:
    assert upward_imports("sseserver.core.sse", {"sseserver.aio.wheel"}) == [
        ("sseserver.core.sse", "sseserver.aio.wheel")]
    assert upward_imports("sseserver.errors", {"sseserver.config"})
    assert upward_imports("sseserver.aio.pool", {"sseserver.streams.memory"})  # same row
    assert upward_imports("sseserver.cli", {"sseserver.cli"})  # a module is no package
    assert not upward_imports("sseserver.core.sse", {"sseserver.core.chunked", "orjson"})
    assert not upward_imports("sseserver.gateway", {"sseserver.routing", "asyncio"})
    assert forbidden_imports("sseserver.core.sse", {"asyncio"}) == [
        ("sseserver.core.sse", "asyncio")]
    assert forbidden_imports("sseserver.routing", {"time"})
    assert not forbidden_imports("sseserver.gateway", {"asyncio"})
    with pytest.raises(LookupError):
        layer_of("sseserver.newcomer")


@pytest.mark.parametrize(("statement", "expected"), [
    ("from . import chunked", "sseserver.core.chunked"),
    ("from .chunked import ChunkedDecoder", "sseserver.core.chunked"),
    ("from ..aio import wheel", "sseserver.aio.wheel"),
    ("from .. import relay", "sseserver.relay"),
    ("from sseserver import routing", "sseserver.routing"),
    ("from sseserver import __version__", "sseserver"),
    ("from sseserver.aio.wheel import TimerWheel", "sseserver.aio.wheel"),
    ("import sseserver.output", "sseserver.output"),
    ("from asyncio import events", "asyncio"),
    ("def f():\n    from sseserver.relay import Relay", "sseserver.relay"),
])
def test_relative_and_package_imports_are_resolved(statement: str, expected: str) -> None:
    assert imports_in(statement, "sseserver.core.sse") == {expected}
    assert imports_in("from . import config", "sseserver", is_init=True) == {
        "sseserver.config"}
