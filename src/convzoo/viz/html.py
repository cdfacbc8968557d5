"""One self-contained HTML page: text, tables and figures, no external resource and no script.

Figures are embedded as base64 PNG data URIs (or inline SVG); the style sheet is inline.
The page opens offline, in a mail attachment or from an artifact store, and renders the
same everywhere.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f0f0f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
figure img, figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4em .8em; }
.verdict { background: #eef6ee; border-left: 4px solid #3a8a3a; padding: .4em .8em; }
pre { background: #f6f6f8; padding: .6em; overflow-x: auto; font-size: .85em; }
footer { margin-top: 3em; font-size: .8em; color: #777; }
"""


def format_cell(value: Any) -> tuple[str, bool]:
    """Text of a table cell and whether it is numeric (right-aligned); the Markdown reports
    (`convzoo.experiments.reports`) format their cells with it too."""
    if value is None:
        return "–", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        return (f"{value:,.2f}" if abs(value) < 1e6 else f"{value:,.0f}"), True
    return str(value), False


class HtmlReport:
    """Build a report section by section, then `render()` or `write(path)` it."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[str] = []
        self._figures = 0

    # -- content ------------------------------------------------------------------
    def heading(self, text: str, level: int = 2) -> None:
        """A section heading (h2 by default)."""
        level = min(max(level, 2), 4)
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, kind: str | None = None) -> None:
        """A paragraph of plain text; `kind` 'note' or 'verdict' draws it in a box."""
        cls = f' class="{kind}"' if kind in ("note", "verdict") else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def preformatted(self, text: str) -> None:
        """A block of monospaced text (commands, configurations)."""
        self._parts.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
              caption: str | None = None) -> None:
        """A table of dict rows; `columns` fixes the order (default: the first row's keys)."""
        if not rows:
            self.paragraph("(no rows)", kind="note")
            return
        cols = list(columns) if columns else list(rows[0].keys())
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols) + "</tr>")
        for row in rows:
            cells = []
            for c in cols:
                text, num = format_cell(row.get(c))
                cells.append(f'<td class="num">{html.escape(text)}</td>' if num else f"<td>{html.escape(text)}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        self._parts.append("\n".join(out))

    def figure(self, fig: "Figure | bytes", caption: str = "", fmt: str = "png", alt: str | None = None) -> None:
        """Embed a matplotlib figure (or PNG bytes) as a data URI, or inline SVG with fmt='svg'."""
        from ._common import figure_bytes

        self._figures += 1
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        alt_text = html.escape(alt or caption or f"figure {self._figures}", quote=True)
        if fmt == "svg" and not isinstance(fig, bytes):
            svg = figure_bytes(fig, "svg").decode("utf-8")
            svg = svg[svg.find("<svg"):]  # drop the XML prolog and DOCTYPE, invalid inside HTML
            self._parts.append(f'<figure role="img" aria-label="{alt_text}">{svg}{cap}</figure>')
            return
        data = fig if isinstance(fig, bytes) else figure_bytes(fig, "png")
        b64 = base64.b64encode(data).decode("ascii")
        self._parts.append(f'<figure><img alt="{alt_text}" src="data:image/png;base64,{b64}">{cap}</figure>')

    def raw(self, fragment: str) -> None:
        """Append trusted HTML (for callers that build their own markup)."""
        self._parts.append(fragment)

    # -- output -------------------------------------------------------------------
    def render(self) -> str:
        """The whole page as one string."""
        from .. import __version__

        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        body = "\n".join(self._parts)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<link rel="icon" href="data:,">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(self.title)}</h1>\n{body}\n"
            f"<footer>convzoo {html.escape(__version__)} · generated {stamp}</footer>\n</body>\n</html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page to `path` (UTF-8); returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.render(), encoding="utf-8")
        return p
