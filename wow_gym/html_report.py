"""A run's report as one self-contained HTML page, and its markdown twin.

A Report is a list of Sections, each a list of blocks: Text, Stats (headline figures), Table, Picture (a PIL
image), Video (frame stacks side by side, e.g. sim | imagined | difference) and Code (the resolved config).
`write_html` embeds every picture as a PNG and every video as an H.264 mp4 in data: URIs, so the page is a
single file that opens offline in any browser and can be mailed or attached to an issue. `write_markdown`
writes report.md with the pictures as PNG files and the videos as GIFs beside it.

H.264 in yuv420p is the codec every browser plays (Chromium, Firefox, Safari); the frames are scaled up by
an integer factor with nearest-neighbour sampling before encoding, so 64 px frames stay crisp and the
halved chroma resolution of yuv420p does not smear colours.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wow_gym.checks import check_frames
from wow_gym.data.atomic import atomic_write_bytes
from wow_gym.data.video import VideoCodec, encode_video
from wow_gym.provenance import atomic_write_text

WEB_CODEC = VideoCodec("libx264", "yuv420p", {"crf": "20", "preset": "veryfast"})
LABEL_HEIGHT = 16
GIF_FRAMES = 80  # report.md's GIFs keep at most this many frames (every k-th): GIF encoding is the slow part
# The player's controls show while the pointer is over a video (pause, scrub frame by frame), not in stills.
HOVER_CONTROLS = 'onmouseenter="this.controls=true" onmouseleave="this.controls=false"'


# -- blocks ------------------------------------------------------------------------------------------------


@dataclass
class Text:
    """A paragraph of plain text (escaped; `code` spans in backticks are kept as code)."""

    text: str


@dataclass
class Stats:
    """Headline figures: (label, value) cards in a row."""

    items: list[tuple[str, str]]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]

    def __post_init__(self) -> None:
        bad = [i for i, row in enumerate(self.rows) if len(row) != len(self.header)]
        if bad:
            raise ValueError(f"table rows {bad} do not have the header's {len(self.header)} cells")


@dataclass
class Picture:
    """A PIL image; `name` is its file name beside report.md."""

    image: Image.Image
    caption: str
    name: str

    @cached_property
    def png(self) -> bytes:
        """The image as PNG, encoded once for both the HTML page and report.md."""
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()


@dataclass
class Video:
    """Labelled frame stacks [T, H, W, 3] uint8 played side by side; `name` is the GIF beside report.md."""

    panels: list[tuple[str, np.ndarray]]
    caption: str
    name: str
    fps: int = 10
    scale: int = 3

    @cached_property
    def frames(self) -> np.ndarray:
        """The panels side by side, scaled and labelled, built once for both outputs."""
        return side_by_side(self.panels, self.scale)


@dataclass
class Code:
    """Preformatted text (a config, a log excerpt)."""

    text: str
    summary: str = ""  # non-empty: folded behind this line


Block = Text | Stats | Table | Picture | Video | Code


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "section"


@dataclass
class Report:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, title: str, *blocks: Block) -> Section:
        section = Section(title, list(blocks))
        self.sections.append(section)
        return section


# -- frames ------------------------------------------------------------------------------------------------


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| per pixel of two equally shaped uint8 frame stacks (the third panel of sim | imagined)."""
    if a.shape != b.shape:
        raise ValueError(f"frame stacks differ in shape: {a.shape} vs {b.shape}")
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.uint8)


def side_by_side(panels: Sequence[tuple[str, np.ndarray]], scale: int = 3) -> np.ndarray:
    """Panels next to each other, scaled up (nearest neighbour) under a label strip; a shorter panel holds
    its last frame. Returns [T, LABEL_HEIGHT + scale*H, sum of scale*W, 3] uint8."""
    if not panels:
        raise ValueError("side_by_side needs at least one panel")
    heights = {frames.shape[1] for _, frames in panels}
    for label, frames in panels:
        check_frames(frames, f"panel {label!r}")
    if len(heights) > 1:
        raise ValueError(f"panels must share one frame height, got {sorted(heights)}")
    length = max(len(frames) for _, frames in panels)
    scaled = [np.repeat(np.repeat(frames, scale, 1), scale, 2) for _, frames in panels]
    row = np.concatenate([np.concatenate([f, np.repeat(f[-1:], length - len(f), 0)]) for f in scaled], 2)
    strip = _label_strip([(label, f.shape[2]) for (label, _), f in zip(panels, scaled)])
    return np.concatenate([np.broadcast_to(strip, (length, *strip.shape)), row], 1)


def _label_strip(labels: list[tuple[str, int]]) -> np.ndarray:
    font = ImageFont.load_default(size=12)
    image = Image.new("RGB", (sum(width for _, width in labels), LABEL_HEIGHT), (30, 30, 30))
    draw, left = ImageDraw.Draw(image), 0
    for label, width in labels:
        draw.text((left + width / 2, LABEL_HEIGHT / 2), label, fill="white", font=font, anchor="mm")
        left += width
    return np.asarray(image)


def encode_web_video(frames: np.ndarray, fps: int) -> bytes:
    """H.264 mp4 (yuv420p, which every browser plays) of uint8 frames; odd sizes are padded to even."""
    pad = ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0))
    return encode_video(np.ascontiguousarray(np.pad(frames, pad, mode="edge")), fps, WEB_CODEC)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# -- HTML --------------------------------------------------------------------------------------------------

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d1d1f;background:#fafafa;margin:0}
main{max-width:1360px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:28px;margin:0 0 4px} h2{font-size:21px;margin:36px 0 10px;border-bottom:1px solid #ddd;
padding-bottom:4px} .subtitle{color:#555;margin:0 0 16px} nav a{margin-right:14px;white-space:nowrap}
a{color:#0a58ca;text-decoration:none} code{background:#eee;padding:0 3px;border-radius:3px;font-size:13px}
table{border-collapse:collapse;margin:10px 0;font-size:13.5px;background:#fff} th,td{border:1px solid #ddd;
padding:4px 8px;text-align:left;vertical-align:top} th{background:#f0f0f0}
tr:nth-child(even) td{background:#fbfbfb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0} .stat{background:#fff;border:1px solid #ddd;
border-radius:8px;padding:8px 14px;min-width:130px} .stat b{display:block;font-size:20px}
.stat span{color:#555;font-size:12.5px}
.media{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start;margin:10px 0}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;max-width:100%}
figcaption{font-size:13px;color:#444;margin-top:4px;max-width:640px}
video,img{display:block;max-width:100%;image-rendering:pixelated;background:#222}
pre{background:#fff;border:1px solid #ddd;padding:10px;overflow-x:auto;font-size:12.5px;max-height:480px}
"""


def write_html(report: Report, path: str | Path) -> Path:
    """Write the report as one HTML file with every picture and video embedded; returns the path."""
    path = Path(path)
    nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in report.sections)
    body = [f"<h1>{html.escape(report.title)}</h1>",
            f'<p class="subtitle">{_inline(report.subtitle)}</p>' if report.subtitle else "",
            f"<nav>{nav}</nav>"]
    for section in report.sections:
        body.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        body += _html_blocks(section.blocks)
        body.append("</section>")
    head = ('<meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f"<title>{html.escape(report.title)}</title><style>{STYLE}</style>")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head>\n<body><main>\n' + "\n".join(body)
            + "\n</main></body></html>\n")
    atomic_write_text(path, page)
    return path


def _html_blocks(blocks: list[Block]) -> list[str]:
    """Consecutive pictures and videos share one wrapping row; everything else stands alone."""
    out, media = [], []
    for block in [*blocks, None]:
        if isinstance(block, (Picture, Video)):
            media.append(_html_media(block))
            continue
        if media:
            out.append('<div class="media">' + "".join(media) + "</div>")
            media = []
        if block is not None:
            out.append(_html_block(block))
    return out


def _html_media(block: Picture | Video) -> str:
    caption = f"<figcaption>{_inline(block.caption)}</figcaption>"
    if isinstance(block, Picture):
        src = data_uri(block.png, "image/png")
        return (f'<figure><img src="{src}" width="{block.image.width}" height="{block.image.height}" '
                f'alt="{html.escape(block.caption)}">{caption}</figure>')
    frames = block.frames
    src = data_uri(encode_web_video(frames, block.fps), "video/mp4")
    return (f'<figure><video src="{src}" width="{frames.shape[2]}" height="{frames.shape[1]}" autoplay loop '
            f'muted playsinline {HOVER_CONTROLS}></video>{caption}</figure>')


def _html_block(block: Block) -> str:
    if isinstance(block, Text):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Stats):
        cards = "".join(f'<div class="stat"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>'
                        for k, v in block.items)
        return f'<div class="stats">{cards}</div>'
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
        rows = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(block, Code):
        pre = f"<pre>{html.escape(block.text)}</pre>"
        if block.summary:
            return f"<details><summary>{html.escape(block.summary)}</summary>{pre}</details>"
        return pre
    raise TypeError(f"unknown report block {type(block).__name__}")


def _cell(text: str) -> str:
    numeric = re.fullmatch(r"[-+]?[\d.,]+(e-?\d+)?[%×]?( ?[a-zA-Z/]+)?|-", text.strip()) is not None
    return f'<td class="num">{_inline(text)}</td>' if numeric else f"<td>{_inline(text)}</td>"


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


# -- markdown ----------------------------------------------------------------------------------------------


def write_markdown(report: Report, out_dir: str | Path, name: str = "report.md") -> Path:
    """Write report.md with its pictures (PNG) and videos (GIF) as files beside it; returns its path."""
    out_dir = Path(out_dir)
    lines = [f"# {report.title}", ""] + ([report.subtitle, ""] if report.subtitle else [])
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _markdown_block(block, out_dir) + [""]
    path = out_dir / name
    atomic_write_text(path, "\n".join(lines))
    return path


def _markdown_block(block: Block, out_dir: Path) -> list[str]:
    if isinstance(block, Text):
        return [block.text]
    if isinstance(block, Stats):
        labels, values = zip(*block.items) if block.items else ((), ())
        return [_row(list(labels)), "|" + "---:|" * len(labels), _row(list(values))]
    if isinstance(block, Table):
        return [_row(block.header), "|" + "---|" * len(block.header), *map(_row, block.rows)]
    if isinstance(block, Picture):
        atomic_write_bytes(out_dir / block.name, block.png)
        return [f"![{block.caption}]({block.name})", "", block.caption]
    if isinstance(block, Video):
        save_frames_gif(block.frames, out_dir / block.name, block.fps)
        return [f"![{block.caption}]({block.name})", "", block.caption]
    if isinstance(block, Code):
        return ([f"{block.summary}:", ""] if block.summary else []) + ["```", block.text.rstrip(), "```"]
    raise TypeError(f"unknown report block {type(block).__name__}")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def save_frames_gif(frames: np.ndarray, path: Path, fps: float, max_frames: int = GIF_FRAMES) -> Path:
    """A looping GIF of uint8 frames [T, H, W, 3]; a longer clip keeps every k-th frame, at fps / k."""
    step = -(-len(frames) // max_frames)
    frames, fps = frames[::step], fps / step
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps),
                   loop=0)
    atomic_write_bytes(path, buffer.getvalue())
    return path
