"""The documentation: links resolve, the README stays short, `make X` names a real target.

Plain unit tests: they read README.md, CHANGELOG.md, docs/*.md and the Makefile as text.
No network, no lab.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAKEFILE = ROOT / "Makefile"
README_MAX_BYTES = 8192


def doc_files() -> list[Path]:
    files = [README, *sorted((ROOT / "docs").glob("*.md"))]
    changelog = ROOT / "CHANGELOG.md"
    if changelog.is_file():
        files.append(changelog)
    return files


def doc_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# ---------------------------------------------------------------- Markdown helpers

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # [text], one level of nested brackets
    r"\(\s*<?([^()\s<>]*)>?(?:\s+\"[^\"]*\")?\s*\)"  # (target "title")
)
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:name|id)=\"([^\"]+)\"")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def split_code(text: str) -> tuple[list[str], list[str]]:
    """(prose lines, fenced code lines) of a Markdown document."""
    prose, code = [], []
    fence = None
    for line in text.splitlines():
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) <= {fence[0]}:
                fence = None
            else:
                code.append(line)
            continue
        prose.append(line)
    return prose, code


def without_code_spans(line: str) -> str:
    return CODE_SPAN.sub("", line)


def heading_text(raw: str) -> str:
    """A heading as GitHub renders it: no code ticks, link text only, no emphasis marks."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*)(.+?)\1", r"\2", text)
    return re.sub(r"<[^>]+>", "", text)


def slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading_text(text).strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub generates for a Markdown file (duplicates get -1, -2, ...)."""
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    seen: Counter[str] = Counter()
    found = set()
    for line in prose:
        found.update(HTML_ANCHOR.findall(line))
        m = ATX_HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(1))
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def links(path: Path) -> list[str]:
    """Every link target in a document's prose (code blocks and code spans are not links)."""
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    targets = []
    for line in prose:
        m = REFERENCE_DEF.match(line)
        if m:
            targets.append(m.group(1))
            continue
        targets += INLINE_LINK.findall(without_code_spans(line))
    return targets


def broken_link(source: Path, target: str) -> str | None:
    """Why a relative link from `source` does not resolve, or None when it does."""
    if not target or SCHEME.match(target) or target.startswith("//"):
        return None  # absolute URLs: not checked (no network)
    path_part, _, fragment = target.partition("#")
    if path_part.startswith("/"):
        return f"{target}: use a relative link, not a site-absolute one"
    dest = (source.parent / unquote(path_part)).resolve() if path_part else source
    if not dest.is_relative_to(ROOT):
        return f"{target}: points outside the repository"
    if not dest.exists():
        return f"{target}: {dest.relative_to(ROOT).as_posix()} does not exist"
    if fragment and dest.suffix == ".md" and unquote(fragment).lower() not in anchors(dest):
        return f"{target}: no heading with anchor #{fragment} in {doc_id(dest)}"
    return None


# ---------------------------------------------------------------- Makefile helpers


def makefile_targets() -> set[str]:
    """Rule targets of the Makefile (not variables, special targets or file targets)."""
    targets = set()
    for line in MAKEFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith(("\t", "#", " ")):
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.\- ]*?)\s*::?(?![=])", line)
        if m:
            targets.update(m.group(1).split())
    return targets


def help_descriptions() -> dict[str, str]:
    """target -> its `## description`, the text `make help` prints."""
    out = {}
    for line in MAKEFILE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_-]+):.*?##\s*(.+)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


MAKE_OPTIONS_WITH_ARGUMENT = {"-C", "-f", "-I", "-j", "-l", "-o", "-W", "--directory", "--file"}
MAKE_CALL = re.compile(r"(?:^|[\s;&|(`$])make((?:[ \t]+[^\s;&|()#`]+)+)")


def make_targets_named(text: str) -> list[str]:
    """The target of every `make ...` command in a piece of code.

    Options and VAR=value are skipped; the first other word is the target. Words after it
    are not read: in the docs they are prose (a quoted message), not a second target.
    """
    named = []
    for m in MAKE_CALL.finditer(text):
        words = iter(m.group(1).split())
        for word in words:
            if word in MAKE_OPTIONS_WITH_ARGUMENT:
                next(words, None)
                continue
            if word.startswith("-") or "=" in word:
                continue
            if re.fullmatch(r"[a-z][a-z0-9_-]*", word):
                named.append(word)
            break
    return named


def make_mentions(path: Path) -> list[str]:
    """Targets named by `make ...` in code spans and code blocks (prose "make" is English)."""
    prose, code = split_code(path.read_text(encoding="utf-8"))
    named = []
    for line in code:
        named += make_targets_named(line.split("#", 1)[0])
    for line in prose:
        for _, span in CODE_SPAN.findall(line):
            named += make_targets_named(span)
    return named


# ---------------------------------------------------------------- the tests


def test_the_helpers_follow_github_rules():
    assert slug("Services and ports") == "services-and-ports"
    assert slug("What `LAB_BIND=0.0.0.0` opens") == "what-lab_bind0000-opens"
    assert slug("Exit codes: 0, 1, 2") == "exit-codes-0-1-2"
    assert slug("[The API](serving-api.md) & more") == "the-api--more"
    assert make_targets_named("make up LAB_MODE=local && make e2e") == ["up", "e2e"]
    assert make_targets_named("make promote TO=staging") == ["promote"]
    assert make_targets_named("make") == []
    assert make_targets_named("make clean deletes every run") == ["clean"]
    assert make_targets_named("make -C . FORCE=1 clean") == ["clean"]
    assert broken_link(README, "https://example.org/nowhere") is None
    assert broken_link(README, "docs/does-not-exist.md") is not None
    assert broken_link(README, "#no-such-heading-anywhere") is not None


@pytest.mark.parametrize("doc", doc_files(), ids=doc_id)
def test_every_relative_link_resolves(doc):
    problems = [p for t in links(doc) if (p := broken_link(doc, t))]
    assert not problems, f"{doc_id(doc)} has broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize("doc", doc_files(), ids=doc_id)
def test_every_make_command_names_a_target(doc):
    targets = makefile_targets()
    unknown = sorted({t for t in make_mentions(doc) if t not in targets})
    assert not unknown, f"{doc_id(doc)} names make targets the Makefile lacks: {unknown}"


def test_readme_is_under_8_kb():
    size = README.stat().st_size
    assert size < README_MAX_BYTES, f"README.md is {size} bytes; keep it under {README_MAX_BYTES}"


def test_readme_does_not_copy_make_help():
    """`make help` is the list of targets; the README points at it instead of copying it."""
    text = README.read_text(encoding="utf-8")
    assert "make help" in text, "the README should say that make help lists every target"
    copied = sorted(t for t, d in help_descriptions().items() if len(d) >= 15 and d in text)
    assert len(copied) < 3, f"README copies make help's descriptions for {copied}"
    targets = makefile_targets() - {"help"}
    mentioned = {t for t in targets if re.search(rf"\bmake {re.escape(t)}\b", text)}
    assert len(mentioned) < 0.8 * len(targets), (
        f"README names {len(mentioned)} of {len(targets)} targets: a copy of make help?"
    )
