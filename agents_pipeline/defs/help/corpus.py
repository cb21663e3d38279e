"""The documentation the help answers from: where it is, and how it splits into passages.

The docs are read from the project folder when it exists (a clone or an editable install, so
an edited runbook is picked up at once) and otherwise from the copy shipped inside the package
(``agents_pipeline/defs/help/bundled_docs``, written at build time; see docs/help.md). A passage is
one markdown section: its heading path (H1 > H2 > ...), a GitHub-style anchor, and its text.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.core.settings import PROJECT_DIR

DOCS_ENV = "AGENTS_PIPELINE_HELP_DOCS"
# Bumped when the splitting below changes, so that a new release re-loads unchanged docs too.
SPLITTER_VERSION = "2"
BUNDLE_DIR = Path(__file__).resolve().parent / "bundled_docs"
MAX_PASSAGE_CHARS = 3000
MAX_DOC_BYTES = 2 * 1024 * 1024

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")


@dataclass(frozen=True)
class Passage:
    doc_path: str
    section: str        # heading path, "An agent is down > First checks"
    anchor: str         # GitHub-style slug of the section's own heading
    body: str
    position: int       # order within the document

    @property
    def content_hash(self) -> str:
        raw = "\x1f".join((self.doc_path, str(self.position), self.section, self.anchor, self.body))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def docs_root(explicit: str | Path | None = None) -> Path:
    """The folder holding README.md and docs/: explicit, $AGENTS_PIPELINE_HELP_DOCS, the
    project folder, or the copy bundled in the package, in that order."""
    for candidate in (explicit, os.environ.get(DOCS_ENV)):
        if candidate:
            path = Path(candidate)
            if not path.is_dir():
                raise ConfigurationError(f"help documentation folder {path} does not exist")
            return path
    # a clone or an editable install; an installed package's parent is site-packages, whose
    # stray docs/ folder (some wheels ship one) must not be mistaken for ours
    if (PROJECT_DIR / "docs").is_dir() and (PROJECT_DIR / "pyproject.toml").is_file():
        return PROJECT_DIR
    if BUNDLE_DIR.is_dir():
        return BUNDLE_DIR
    raise ConfigurationError(
        f"no documentation found: neither {PROJECT_DIR / 'docs'} nor the packaged copy {BUNDLE_DIR} "
        f"exists (set {DOCS_ENV} to a folder holding README.md and docs/)")


def doc_files(root: Path) -> list[Path]:
    """README.md and every docs/**/*.md under ``root``, in a stable order."""
    files = [root / "README.md"] if (root / "README.md").is_file() else []
    docs = root / "docs"
    if docs.is_dir():
        files += sorted(p for p in docs.rglob("*.md") if p.is_file())
    return files


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _chunks(body: str) -> list[str]:
    """A long section split at blank lines into pieces of at most MAX_PASSAGE_CHARS."""
    if len(body) <= MAX_PASSAGE_CHARS:
        return [body]
    pieces: list[str] = []
    current = ""
    for para in re.split(r"\n\s*\n", body):
        while len(para) > MAX_PASSAGE_CHARS:  # one huge paragraph (a table, a code block)
            pieces.append(para[:MAX_PASSAGE_CHARS])
            para = para[MAX_PASSAGE_CHARS:]
        if current and len(current) + len(para) + 2 > MAX_PASSAGE_CHARS:
            pieces.append(current)
            current = para
        else:
            current = f"{current}\n\n{para}" if current else para
    if current:
        pieces.append(current)
    return pieces


def split_markdown(doc_path: str, text: str) -> list[Passage]:
    """One passage per section with text (heading lines inside code fences do not count)."""
    sections: list[tuple[list[str], str, list[str]]] = []  # (heading path, anchor, lines)
    path: list[tuple[int, str]] = []
    title = Path(doc_path).stem.replace("-", " ").replace("_", " ")
    current: tuple[list[str], str, list[str]] = ([title], slug(title), [])
    used: dict[str, int] = {}
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            current[2].append(line)
            continue
        sections.append(current)
        level, heading = len(match.group(1)), match.group(2).strip()
        path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, heading)]
        anchor = slug(heading)
        if anchor in used:  # GitHub numbers repeated headings: x, x-1, x-2
            used[anchor] += 1
            anchor = f"{anchor}-{used[anchor]}"
        else:
            used[anchor] = 0
        current = ([h for _, h in path], anchor, [])
    sections.append(current)

    passages: list[Passage] = []
    for heading_path, anchor, lines in sections:
        body = "\n".join(lines).strip()
        if not body:
            continue
        for piece in _chunks(body):
            passages.append(Passage(doc_path, " > ".join(heading_path), anchor, piece, len(passages)))
    return passages


def load_corpus(root: Path | None = None, paths: Iterable[str] | None = None) -> list[Passage]:
    """Every passage of the documentation under ``root`` (optionally only the given relative
    paths). A file that is not UTF-8 or is unreasonably large is refused by name."""
    root = docs_root(root)
    wanted = set(paths) if paths is not None else None
    passages: list[Passage] = []
    for file in doc_files(root):
        rel = file.relative_to(root).as_posix()
        if wanted is not None and rel not in wanted:
            continue
        if file.stat().st_size > MAX_DOC_BYTES:
            raise ConfigurationError(f"{rel} is larger than {MAX_DOC_BYTES} bytes; not a document")
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"{rel} is not valid UTF-8 (byte {exc.start})") from None
        passages += split_markdown(rel, text.replace("\x00", ""))
    return passages


def corpus_hash(passages: Iterable[Passage]) -> str:
    """One hash for the whole corpus: changes when any passage or the splitter changes."""
    digest = hashlib.sha256(f"splitter:{SPLITTER_VERSION}".encode())
    for passage in sorted(passages, key=lambda p: (p.doc_path, p.position)):
        digest.update(passage.content_hash.encode())
    return digest.hexdigest()
