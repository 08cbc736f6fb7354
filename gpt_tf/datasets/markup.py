"""Markup to plain prose: reStructuredText documentation and MediaWiki articles.

Both converters keep the sentences a reader sees and drop what a reader does
not: code and console blocks, tables of contents, directive options, link
targets, templates, tables and references. They are deliberately small
(regular expressions, standard library only): a language model needs clean
running text, not a faithful renderer.
"""

import html
import re

# An HTML character reference with its semicolon ("&nbsp;", "&#233;", "&#x2014;"): a bare
# "&" and "AT&T" are text, not references
ENTITY = re.compile(r"&(?:[a-zA-Z][a-zA-Z0-9]*|#[0-9]+|#[xX][0-9a-fA-F]+);")


def unescape_entities(text):
    """`text` with its HTML character references replaced by their characters; a no-break
    space becomes a plain space."""
    return ENTITY.sub(lambda match: html.unescape(match.group()).replace("\xa0", " "), text)

# ---- reStructuredText ----------------------------------------------------------------------

# Directives whose indented body is prose worth keeping (admonitions, API entries:
# the signature line is dropped, the description stays).
_PROSE_DIRECTIVES = {
    "note", "warning", "admonition", "seealso", "versionadded", "versionchanged", "deprecated",
    "tip", "important", "attention", "caution", "hint", "danger", "error", "topic", "sidebar",
    "class", "method", "attribute", "function", "exception", "data", "classmethod",
    "staticmethod", "setting", "django-admin", "django-admin-option", "templatetag",
    "templatefilter", "fieldlookup", "envvar", "object", "rubric", "describe", "option",
}
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([A-Za-z][\w:-]*)::(.*)$")
_COMMENT_OR_TARGET = re.compile(r"^(\s*)\.\.(\s|$)")
_SECTION_RULE = re.compile(r"^\s*([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")
_FIELD = re.compile(r"^\s*:[\w -]+:(\s|$)")
# :role:`text <target>` -> text; :role:`~a.b.c` -> c; :role:`a.b` -> a.b
_ROLE = re.compile(r":[\w:-]+:`([^`]*)`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]*>`__?")
_LITERAL = re.compile(r"``([^`]+)``")
_INTERPRETED = re.compile(r"`([^`]+)`_{0,2}")
_EMPHASIS = re.compile(r"\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*")
_SUBSTITUTION = re.compile(r"\|([\w -]+)\|")


def _role_text(match):
    text = match.group(1)
    label = re.match(r"(.+?)\s*<[^<>]*>$", text)
    if label:
        return label.group(1)
    text = text.lstrip("!")
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return text


def _inline_rst(line):
    line = _ROLE.sub(_role_text, line)
    line = _LINK.sub(r"\1", line)
    line = _LITERAL.sub(r"\1", line)
    line = _INTERPRETED.sub(r"\1", line)
    line = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), line)
    line = _SUBSTITUTION.sub(r"\1", line)
    return line.replace("\\", "")


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def rst_to_text(text):
    """Plain prose from a reStructuredText document.

    Kept: titles, paragraphs, list items, admonition and API-entry bodies,
    inline markup reduced to its text (`:class:`~a.B`` -> `B`, ``x`` -> `x`).
    Dropped: literal blocks (after `::`), code/console/toctree/image and other
    non-prose directives with their bodies, directive options, comments and
    link targets, section underlines, tables.

    Args:
        text: the document.

    Returns:
        Paragraphs separated by blank lines (each joined onto one line).
    """
    lines = text.replace("\t", "    ").split("\n")
    kept, skip_deeper_than, literal_after = [], None, None
    for raw in lines:
        stripped = raw.strip()
        indent = _indent(raw)
        if skip_deeper_than is not None:
            if not stripped or indent > skip_deeper_than:
                continue
            skip_deeper_than = None
        if literal_after is not None and stripped:
            # a literal block is whatever follows `::` indented deeper
            if indent > literal_after:
                skip_deeper_than, literal_after = literal_after, None
                continue
            literal_after = None
        directive = _DIRECTIVE.match(raw)
        if directive:
            name = directive.group(2).split(":")[-1].lower()
            if name in _PROSE_DIRECTIVES:
                title = directive.group(3).strip()
                kept.append("")
                if name in ("admonition", "rubric", "topic", "sidebar") and title:
                    kept.extend([title, ""])
                # its options (":synopsis: ...") are dropped below as fields
            else:
                skip_deeper_than = indent
            continue
        if _COMMENT_OR_TARGET.match(raw):
            skip_deeper_than = indent
            continue
        if _SECTION_RULE.match(raw) or re.match(r"^\s*={2,}(\s+={2,})+\s*$", raw):
            kept.append("")
            continue
        if stripped.startswith(("+-", "+=")) or (stripped.startswith("|") and
                                                 stripped.endswith("|")):
            continue  # grid tables
        if _FIELD.match(raw):
            continue
        if stripped.endswith("::"):
            literal_after = indent
            stripped = stripped[:-2].rstrip()
            if stripped and not stripped.endswith(":"):
                stripped += ":"
        kept.append(stripped)
    return "\n\n".join(filter(None, (_inline_rst(p).strip() for p in _paragraphs(kept))))


def _paragraphs(lines):
    paragraphs, current = [], []
    for line in lines + [""]:
        if line.strip():
            # a list bullet starts its own paragraph
            if current and re.match(r"^([*\-+]|\d+\.|#\.)\s", line):
                paragraphs.append(" ".join(current))
                current = []
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return [re.sub(r"\s{2,}", " ", p).strip() for p in paragraphs]


# ---- MediaWiki -----------------------------------------------------------------------------

_WIKI_PAGE = re.compile(r"<page>(.*?)</page>", re.S)
_WIKI_FIELD = {
    "title": re.compile(r"<title>(.*?)</title>", re.S),
    "ns": re.compile(r"<ns>(.*?)</ns>", re.S),
    "text": re.compile(r"<text[^>]*>(.*?)</text>", re.S),
}
_WIKI_DROP_SECTIONS = ("see also", "references", "further reading", "external links", "notes",
                       "bibliography", "sources", "footnotes", "citations")


def wiki_pages(xml_text):
    """Yields `(title, wikitext)` of the article pages (namespace 0, not redirects) of a dump."""
    for page in _WIKI_PAGE.finditer(xml_text):
        body = page.group(1)
        fields = {k: (p.search(body).group(1) if p.search(body) else "") for k, p in
                  _WIKI_FIELD.items()}
        if fields["ns"].strip() != "0" or "<redirect" in body:
            continue
        yield html.unescape(fields["title"]).strip(), html.unescape(fields["text"])


def _strip_nested(text, opening, closing):
    """Removes balanced `opening ... closing` spans (templates, tables), nested ones too."""
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith(opening, i):
            depth += 1
            i += len(opening)
        elif depth and text.startswith(closing, i):
            depth -= 1
            i += len(closing)
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


def _wiki_link(match):
    target, _, label = match.group(1).partition("|")
    if ":" in target.split("#")[0] and not target.startswith(":"):
        return ""  # File:, Category:, interlanguage links
    return (label or target).split("|")[-1].lstrip(":")


def wikitext_to_text(wikitext):
    """Plain prose from one article's wikitext.

    Dropped: templates and infoboxes, tables, references, comments, files and
    categories, tag markup, list markers, bold/italic quotes, and the sections
    from "See also"/"References"/"External links" on. Headings stay as lines.

    Args:
        wikitext: the article source (entities already unescaped).

    Returns:
        Paragraphs separated by blank lines.
    """
    text = re.sub(r"<!--.*?-->", "", wikitext, flags=re.S)
    text = re.sub(r"<ref[^>/]*/>", "", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>", "", text, flags=re.S)
    text = _strip_nested(text, "{{", "}}")
    text = _strip_nested(text, "{|", "|}")
    text = re.sub(r"<(gallery|math|source|syntaxhighlight|timeline|score)[^>]*>.*?</\1>", "",
                  text, flags=re.S)
    # links: nested [[File:..|[[x]]]] first goes with its outer link
    for _ in range(3):
        text = re.sub(r"\[\[([^\[\]]*)\]\]", _wiki_link, text)
    text = re.sub(r"\[(?:https?|ftp)://\S+\s([^\]]+)\]", r"\1", text)
    text = re.sub(r"\[(?:https?|ftp)://\S+\]", "", text)
    text = re.sub(r"<[^>]+>", "", text)
    # the dump's XML escaping is undone by the reader; what is left ("0&nbsp;°C",
    # "&mdash;") is wikitext's own, which MediaWiki renders as characters
    text = unescape_entities(text)
    text = re.sub(r"'{2,}", "", text)
    lines = []
    for line in text.split("\n"):
        stripped = line.strip()
        heading = re.match(r"^(=+)\s*(.*?)\s*\1$", stripped)
        if heading:
            if heading.group(2).lower() in _WIKI_DROP_SECTIONS:
                break
            lines.extend(["", heading.group(2), ""])
            continue
        if stripped.startswith(("__", "|", "!")):
            continue
        stripped = re.sub(r"^[*#:;]+\s*", "", stripped)
        lines.append(stripped)
    text = "\n".join(lines)
    text = re.sub(r"\(\s*[,;]?\s*\)", "", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r" ([,.;:])", r"\1", text)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(" ".join(p.split("\n")) for p in paragraphs if p)
