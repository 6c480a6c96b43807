"""The "never imports" column of the layout, checked on the source (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sseserver"

# module prefix -> imports it must never make
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "sseserver.errors": ("sseserver.",),
    "sseserver.events": ("asyncio", "sseserver.aio", "sseserver.providers"),
    "sseserver.config": ("os", "sys", "asyncio"),
    "sseserver.core": ("asyncio", "socket", "ssl", "time", "sseserver.aio"),
    "sseserver.providers": ("asyncio", "socket", "sseserver.aio", "sseserver.streams"),
    "sseserver.formats": ("asyncio", "socket", "sseserver.aio", "sseserver.providers"),
    "sseserver.compat": ("asyncio", "socket", "sseserver.aio", "sseserver.providers",
                         "sseserver.relay", "sseserver.gateway"),
    "sseserver.aio": ("sseserver.providers", "sseserver.formats", "sseserver.streams",
                      "sseserver.gateway", "sseserver.relay"),
    "sseserver.streams": ("sseserver.aio",),
    "sseserver.fake": ("sseserver.gateway", "sseserver.relay", "sseserver.server"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(module: str, imported: set[str]) -> list[str]:
    found = []
    for prefix, banned in FORBIDDEN.items():
        if module != prefix and not module.startswith(prefix + "."):
            continue
        for name in imported:
            for ban in banned:
                if name == ban.rstrip(".") or name.startswith(ban if ban.endswith(".")
                                                              else ban + "."):
                    found.append(f"{module} imports {name}")
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_module_respects_the_layering(path: Path) -> None:
    assert violations(module_name(path), imports_of(path)) == []


def test_the_check_itself_catches_a_violation() -> None:
    assert violations("sseserver.core.sse", {"asyncio"}) == ["sseserver.core.sse imports asyncio"]
    assert violations("sseserver.aio.x", {"sseserver.providers.openai"})
    assert violations("sseserver.errors", {"sseserver.config"})
    assert not violations("sseserver.gateway", {"asyncio"})
