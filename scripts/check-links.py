#!/usr/bin/env python3
"""Checks the documentation's links (Python 3 standard library only).

For README.md and every docs/*.md:
- every relative link and image (Markdown `[text](target)`, `![alt](target)`, reference
  definitions `[name]: target`, and HTML `src="…"` / `href="…"`) must resolve to an existing
  file or folder inside the repository (the `#anchor` part is not checked);
- no link may contain "../shared", leave the repository root, or be an absolute or `file:` path;
- README.md must have at most 250 lines.

Links inside fenced code blocks and inline code spans are ignored. External http(s) and mailto
links are not fetched. Exits 1 and names every problem (file:line: message), else prints a
one-line summary and exits 0.

Usage: python3 scripts/check-links.py [REPO_ROOT]
"""

import os
import re
import sys

README_MAX_LINES = 250

# [text](target "title") and ![alt](target); the text may hold one level of nested brackets
# (an image inside a link).
MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
# [name]: target   (reference definitions, at the start of a line)
MD_REF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
# <img src="…">, <a href="…">, <source srcset> is not used here
HTML_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
EXTERNAL = re.compile(r"^(?:https?:|mailto:)", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files(root):
    files = []
    readme = os.path.join(root, "README.md")
    if os.path.isfile(readme):
        files.append(readme)
    docs = os.path.join(root, "docs")
    if os.path.isdir(docs):
        for name in sorted(os.listdir(docs)):
            path = os.path.join(docs, name)
            if name.endswith(".md") and os.path.isfile(path):
                files.append(path)
    return files


def links_in(text):
    """(line number, target) for every link outside code blocks and code spans."""
    found = []
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.lstrip()
        marker = re.match(r"(`{3,}|~{3,})", stripped)
        if fence is None and marker:
            fence = marker.group(1)[0] * len(marker.group(1))
            continue
        if fence is not None:
            if stripped.startswith(fence) and stripped.strip(fence[0]).strip() == "":
                fence = None
            continue
        prose = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)
        for match in MD_LINK.finditer(prose):
            found.append((number, match.group(1)))
        ref = MD_REF.match(prose)
        if ref:
            found.append((number, ref.group(1)))
        for match in HTML_ATTR.finditer(prose):
            found.append((number, match.group(1) if match.group(1) is not None else match.group(2)))
    return found


def check_target(root, source, target):
    """A problem with one link, or None."""
    target = target.strip()
    if target.startswith("<") and target.endswith(">"):
        target = target[1:-1].strip()
    if "../shared" in target:
        return f"link leaves the repository (../shared): {target}"
    if EXTERNAL.match(target):
        return None
    if SCHEME.match(target):
        return f"link with a non-web scheme: {target}"
    path = target.split("#", 1)[0].split("?", 1)[0]
    if path == "":
        return None  # an anchor in the same file
    if path.startswith("/") or path.startswith("\\"):
        return f"absolute path (links must be relative to the file): {target}"
    resolved = os.path.realpath(os.path.join(os.path.dirname(source), path))
    top = os.path.realpath(root)
    if resolved != top and not resolved.startswith(top + os.sep):
        return f"link leaves the repository: {target}"
    if not os.path.exists(resolved):
        return f"link to a missing file: {target}"
    return None


def main(argv):
    root = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    problems = []
    files = markdown_files(root)
    if not files:
        problems.append(f"{root}: no README.md or docs/*.md found")
    count = 0
    for path in files:
        relative = os.path.relpath(path, root)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if relative == "README.md":
            lines = text.count("\n") + (0 if text.endswith("\n") or text == "" else 1)
            if lines > README_MAX_LINES:
                problems.append(f"README.md: {lines} lines, more than {README_MAX_LINES}; move details into docs/")
        for number, target in links_in(text):
            count += 1
            problem = check_target(root, path, target)
            if problem:
                problems.append(f"{relative}:{number}: {problem}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"check-links: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check-links: {count} links in {len(files)} files resolve inside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
