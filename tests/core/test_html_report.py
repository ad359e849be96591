"""The self-contained HTML report: blocks, frames, the embedded video, and the page in headless Chromium."""

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from wow_gym.data.video import decode_video
from wow_gym.html_report import (
    LABEL_HEIGHT,
    Code,
    Picture,
    Report,
    Stats,
    Table,
    Text,
    Video,
    difference,
    encode_web_video,
    save_frames_gif,
    side_by_side,
    write_html,
    write_markdown,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "outputs" / "test-artifacts"
# What each video reached, kept from its events: a snapshot alone can land on a looping clip's seek back to 0,
# when its readyState drops to 1 for a moment (a CI run caught exactly that).
PROBE = """<pre id="probe">pending</pre><script>
const seen = new Map();
function note(v) {
  const s = seen.get(v) || {ready: 0, time: 0};
  seen.set(v, {ready: Math.max(s.ready, v.readyState), time: Math.max(s.time, v.currentTime),
    width: v.videoWidth, height: v.videoHeight, error: v.error ? v.error.code : null});
}
for (const v of document.querySelectorAll("video"))
  for (const e of ["loadedmetadata", "loadeddata", "canplay", "playing", "timeupdate", "error"])
    v.addEventListener(e, () => note(v));
function probe() {
  const videos = [...document.querySelectorAll("video")].map(v => (note(v), seen.get(v)));
  const images = [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth}));
  document.getElementById("probe").textContent = JSON.stringify({videos, images,
    sections: document.querySelectorAll("section").length, height: document.body.scrollHeight});
}
setInterval(probe, 50);
</script>"""


def _clip(steps: int = 12, size: int = 32, offset: int = 0) -> np.ndarray:
    """A red square moving across a grey floor: [steps + 1, size, size, 3] uint8."""
    frames = np.full((steps + 1, size, size, 3), 90, np.uint8)
    for t in range(steps + 1):
        x = (2 * t + offset) % (size - 6)
        frames[t, 12:18, x:x + 6] = (220, 30, 30)
    return frames


def _plot() -> Image.Image:
    image = Image.new("RGB", (240, 160), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(10, 150), (120, 40), (230, 90)], fill=(31, 119, 180), width=3)
    return image


def _tiny_report() -> Report:
    sim, imagined = _clip(), _clip(offset=3)
    report = Report("tiny report", "commit `abc123`, 0 s")
    report.add("Headline", Stats([("sim success", "50%"), ("imagined steps/s", "123.4")]),
               Text("The `sim` and the imagined clip <differ> on purpose."))
    report.add("Side by side",
               Video([("sim", sim), ("imagined", imagined), ("difference", difference(sim, imagined))],
                     "sim | imagined | difference", "pair.gif", fps=8),
               Video([("sim", sim[:5])], "a shorter clip", "short.gif"),
               Picture(_plot(), "a plot", "plot.png"),
               Table(["policy", "success"], [["shipped", "25%"], ["fine-tuned", "50%"]]))
    report.add("Configuration", Code("seed: 0\nsteps: 12\n", summary="resolved config"))
    return report


def test_side_by_side_scales_labels_and_holds_the_last_frame():
    long, short = _clip(steps=9), _clip(steps=4)
    frames = side_by_side([("sim", long), ("imagined", short)], scale=2)
    assert frames.shape == (10, LABEL_HEIGHT + 64, 128, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0, LABEL_HEIGHT:, :64], np.repeat(np.repeat(long[0], 2, 0), 2, 1))
    np.testing.assert_array_equal(frames[9, LABEL_HEIGHT:, 64:], frames[4, LABEL_HEIGHT:, 64:])
    assert frames[0, :LABEL_HEIGHT].std() > 0  # the labels are drawn
    with pytest.raises(ValueError, match="one frame height"):
        side_by_side([("a", _clip(size=32)), ("b", _clip(size=16))])
    with pytest.raises(ValueError, match="uint8.*float32"):
        side_by_side([("a", long.astype(np.float32))])


def test_difference_and_table_check_their_inputs():
    a = _clip()
    assert difference(a, a).max() == 0 and difference(a, _clip(offset=3)).max() > 0
    with pytest.raises(ValueError, match="differ in shape"):
        difference(a, a[:3])
    with pytest.raises(ValueError, match="header's 2 cells"):
        Table(["a", "b"], [["1"]])


def test_web_video_decodes_to_the_frames_at_even_size():
    frames = side_by_side([("sim", _clip(size=31))], scale=3)  # 109 x 93: H.264 in yuv420p needs even sizes
    decoded = decode_video(encode_web_video(frames, fps=10))
    assert frames.shape[1:3] == (109, 93) and decoded.shape == (len(frames), 110, 94, 3)
    error = np.abs(decoded[:, :109, :93].astype(int) - frames.astype(int)).mean()
    assert error < 6, f"mean abs error {error:.1f} levels"


def test_long_gifs_keep_every_kth_frame(tmp_path):
    frames = _clip(steps=199)  # 200 frames
    gif = Image.open(save_frames_gif(frames, tmp_path / "long.gif", fps=20, max_frames=80))
    assert gif.n_frames == 67 and gif.info["duration"] == 150  # every 3rd frame at 20/3 fps: same length


class _Sources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def test_html_is_self_contained_and_markdown_writes_its_files(tmp_path):
    report = _tiny_report()
    page = write_html(report, tmp_path / "report.html").read_text()
    parser = _Sources()
    parser.feed(page)
    assert [parser.tags.count(tag) for tag in ("video", "img", "section")] == [2, 1, 3]
    assert parser.links and all(link.startswith(("data:", "#")) for link in parser.links), parser.links
    assert sum(link.startswith("data:video/mp4;base64,") for link in parser.links) == 2
    assert "&lt;differ&gt;" in page and "<code>sim</code>" in page and "<details>" in page
    markdown = write_markdown(report, tmp_path).read_text()
    assert "![sim | imagined | difference](pair.gif)" in markdown and "| shipped | 25% |" in markdown
    for name in ("pair.gif", "short.gif", "plot.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert Image.open(tmp_path / "pair.gif").n_frames == 13


def _chromium() -> str:
    for name in (os.environ.get("WOW_GYM_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.fail("the browser test needs headless Chromium: `make install` installs Debian's chromium package "
                "(apt-get install -y chromium, as root); elsewhere install Chromium or Chrome and set "
                "WOW_GYM_CHROMIUM=/path/to/it")


def _run_chromium(page: Path, profile: Path, *args: str, budget_ms: int = 5000) -> str:
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--mute-audio", "--no-first-run", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
               *args,
               page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _probe_page(page: Path, profile: Path) -> dict:
    """The probe's record of the page in headless Chromium. Media decode runs in real time, not in the virtual
    time the budget counts, so on a loaded machine a clip may not have started yet: look again, longer."""
    for budget_ms in (5000, 15000, 45000):
        dom = _run_chromium(page, profile, "--dump-dom", budget_ms=budget_ms)
        match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
        assert match and match.group(1) != "pending", dom[-2000:]
        state = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        if all(video["error"] is not None or video["time"] > 0 for video in state["videos"]):
            break
    return state


def test_report_renders_in_headless_chromium_and_its_videos_load(tmp_path):
    page = write_html(_tiny_report(), tmp_path / "report.html")
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</main>", PROBE + "</main>"))
    state = _probe_page(probed, tmp_path / "profile")
    assert state["sections"] == 3 and state["height"] > 600
    assert len(state["videos"]) == 2 and len(state["images"]) == 1
    for video in state["videos"]:  # readyState 2+: a frame was decoded; currentTime moved: the clip played
        assert video["error"] is None and video["ready"] >= 2, video
        assert video["width"] > 0 and video["height"] > 0 and video["time"] > 0, video
    assert all(image["complete"] and image["width"] == 240 for image in state["images"])

    screenshot = tmp_path / "report.png"
    _run_chromium(page, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1000,900")
    picture = np.asarray(Image.open(screenshot).convert("RGB"))
    assert picture.shape == (900, 1000, 3) and picture.std() > 10  # not a blank page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "html_report_tiny.png")
