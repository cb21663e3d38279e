"""The README's architecture section is the map a newcomer reads first: it must match the tree."""

import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
PACKAGE = PROJECT / "agents_pipeline"


def _section() -> str:
    text = (PROJECT / "README.md").read_text()
    start = text.index("## Architecture")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _table_paths() -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", _section(), flags=re.MULTILINE)


def test_every_path_in_the_table_exists():
    """Guards against a folder renamed or moved while the README still points at the old place."""
    paths = _table_paths()
    assert len(paths) >= 10
    missing = [p for p in paths if not (PROJECT / p.rstrip("/")).exists()]
    assert missing == []


def test_every_package_folder_and_domain_is_in_the_table():
    """Guards against a new layer or domain landing without its line on the map."""
    listed = {p.rstrip("/") for p in _table_paths()}
    folders = {f"agents_pipeline/{d.name}" for d in PACKAGE.iterdir() if (d / "__init__.py").exists()}
    domains = {f"agents_pipeline/defs/{d.name}" for d in (PACKAGE / "defs").iterdir() if (d / "__init__.py").exists()}
    assert sorted((folders | domains) - listed) == []


def test_the_diagrams_name_the_layers_the_layer_test_enforces():
    """Guards against the diagram and the enforced layers drifting apart."""
    section = _section()
    assert section.count("```mermaid") == 2
    for layer in ("cli/", "demo/", "defs/", "defs/alerts/", "platform/", "api/", "core/", "console.py"):
        assert layer in section, layer
