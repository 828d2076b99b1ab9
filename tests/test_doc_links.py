"""Every relative link in README.md and docs/*.md resolves: the file exists and, for ``#anchor``, a heading has that slug.

Slugs follow GitHub: the heading text lowercased, markup and punctuation other than ``-`` and ``_``
removed, each space turned into ``-``; a repeated heading gets ``-1``, ``-2``... Links to other
files (code, images) must exist. http(s) and mailto links are not followed. Links inside fenced
code blocks and inline code are not links.
"""
import re
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[1]

FENCE = re.compile(r'^\s*(```|~~~)')
HEADING = re.compile(r'^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
INLINE_LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)')
REFERENCE_LINK = re.compile(r'^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$')
EXTERNAL = re.compile(r'^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)')  # http:, https:, mailto:, ...


def pages(root: Path = ROOT) -> List[Path]:
    """README.md and every page of docs/."""
    found = [root / 'README.md'] if (root / 'README.md').is_file() else []
    return found + sorted((root / 'docs').glob('*.md'))


def prose_lines(text: str) -> List[str]:
    """The lines outside fenced code blocks, with inline code spans blanked out."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r'(`+)(?:(?!\1).)+?\1', '', line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link in a heading keeps its text
    text = re.sub(r'<[^>]+>', '', text).strip().lower()
    text = ''.join(ch for ch in text if ch.isalnum() or ch in ' -_')
    return text.replace(' ', '-')


def anchors(path: Path) -> Set[str]:
    """Every heading anchor of a markdown file (repeats numbered as GitHub numbers them)."""
    seen: Dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding='utf-8').splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f'{base}-{n}')
    return out


def links(path: Path) -> List[str]:
    """The link targets of a markdown file, inline and reference-style."""
    out = []
    for line in prose_lines(path.read_text(encoding='utf-8')):
        out += INLINE_LINK.findall(line)
        ref = REFERENCE_LINK.match(line)
        if ref:
            out.append(ref.group(1))
    return [t for t in out if t]


def broken_links(page: Path) -> List[str]:
    """``page -> target: why`` for every relative link of ``page`` that does not resolve."""
    problems = []
    for target in links(page):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition('#')
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            problems.append(f'{page.name} -> {target}: no such file')
            continue
        if anchor and dest.is_file() and dest.suffix.lower() == '.md' and anchor not in anchors(dest):
            problems.append(f'{page.name} -> {target}: no heading with anchor #{anchor} in {dest.name}')
    return problems


def test_the_pages_exist():
    names = {p.relative_to(ROOT).as_posix() for p in pages()}
    assert 'README.md' in names and 'docs/README.md' in names and len(names) >= 7, sorted(names)


def test_every_relative_link_resolves():
    problems = [p for page in pages() for p in broken_links(page)]
    assert not problems, '\n'.join(problems)


def test_the_checker_reports_a_broken_file_and_a_broken_anchor(tmp_path):
    """The check itself, so that the test above cannot pass by finding no links."""
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'code.py').write_text('')
    (tmp_path / 'docs' / 'page.md').write_text(
        '# A page\n\n## Options: the `--flag` (and more)\n\n## Options: the `--flag` (and more)\n')
    (tmp_path / 'README.md').write_text(
        '# Top\n\n'
        'Good: [page](docs/page.md), [section](docs/page.md#options-the---flag-and-more), '
        '[repeat](docs/page.md#options-the---flag-and-more-1), [code](code.py), [here](#top), '
        '[web](https://example.com/x.md#nothing), [mail](mailto:a@b.c).\n\n'
        'Bad: [gone](docs/missing.md), [anchor](docs/page.md#no-such-heading), [code](missing.py), '
        '[local](#nowhere).\n\n'
        '```\n[not a link](docs/missing_in_code.md)\n```\n'
        'Inline code is not a link either: `[x](docs/missing_inline.md)`.\n')
    assert slug('Options: the `--flag` (and more)') == 'options-the---flag-and-more'
    assert len(links(tmp_path / 'README.md')) == 11
    problems = broken_links(tmp_path / 'README.md')
    assert problems == [
        'README.md -> docs/missing.md: no such file',
        'README.md -> docs/page.md#no-such-heading: no heading with anchor #no-such-heading in page.md',
        'README.md -> missing.py: no such file',
        'README.md -> #nowhere: no heading with anchor #nowhere in README.md',
    ], problems
    assert broken_links(tmp_path / 'docs' / 'page.md') == []
