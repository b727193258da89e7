"""report.html: the report's markdown as one self-contained page (figures embedded as base64)."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px;"
         "vertical-align:top}div.long{max-width:28em;overflow-wrap:break-word}"
         "th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}")


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


LONG_CELL = 40  # characters: a longer cell is wrapped in a box of bounded width (div.long, at most 28em)


def _cell(text: str, tag: str) -> str:
    inner = _inline(text)
    if len(text) > LONG_CELL:
        inner = f'<div class="long">{inner}</div>'
    return f"<{tag}>{inner}</{tag}>"


def _image(alt: str, src: str, base: Path) -> str:
    path = base / src
    if not path.exists():
        return f"<p>[missing figure {html.escape(src)}]</p>"
    kind = "png" if path.suffix.lower() == ".png" else path.suffix.lower().lstrip(".")
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/{kind};base64,{data}"></figure>'


def to_html(markdown_text: str, base: Path, title: str = "hyperbench report") -> str:
    """The subset of markdown the report writes: headings, paragraphs, bullet lists, tables, images."""
    out, lines, i = [], markdown_text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := re.fullmatch(r"(#+) (.*)", line):
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
            i += 1
        elif m := re.fullmatch(r"!\[(.*)\]\((.+)\)", line.strip()):
            out.append(_image(m.group(1), m.group(2), base))
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            cells = [[c.strip() for c in row.strip().strip("|").split(" | ")] for row in block if not row.startswith("|---")]
            head, body = cells[0], cells[1:]
            out.append("<table><tr>" + "".join(_cell(c, "th") for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(_cell(c, "td") for c in r) + "</tr>" for r in body)
                       + "</table>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", "- ", "![")):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")
