"""Headless Chromium: print an HTML page to PDF, or take a screenshot of it.

Chromium (Debian package `chromium`) and a CJK font (`fonts-noto-cjk`) are installed by `make setup`.
The flags keep it from reaching out to the network (this machine's network is closed: background
connections would be refused, many at a time) and give every call its own throw-away profile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
QUIET_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--hide-scrollbars", "--mute-audio")


class BrowserMissing(RuntimeError):
    pass


def find_chromium() -> str:
    explicit = os.environ.get("CV_CHROMIUM")
    for name in ((explicit,) if explicit else CANDIDATES):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserMissing("Chromium is not installed: `make setup` installs it (Debian packages chromium and "
                         "fonts-noto-cjk), or set CV_CHROMIUM to a Chromium/Chrome executable")


def _run(args: list[str], output: Path, timeout: float) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cv-chromium-") as profile:
        command = [find_chromium(), *QUIET_FLAGS, f"--user-data-dir={profile}", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not output.exists() or output.stat().st_size == 0:
        raise RuntimeError(f"Chromium could not write {output} (exit {done.returncode}): {done.stderr[-800:]}")
    return output


def print_pdf(html: Path, pdf: Path, timeout: float = 120) -> Path:
    """The page as an A4 PDF (the page's own @page rules apply), without browser headers and footers."""
    tmp = pdf.with_suffix(".pdf.part")
    _run(["--no-pdf-header-footer", "--run-all-compositor-stages-before-draw", "--virtual-time-budget=5000",
          f"--print-to-pdf={tmp}", Path(html).resolve().as_uri()], tmp, timeout)
    os.replace(tmp, pdf)
    return pdf


def screenshot(html: Path, png: Path, width: int = 1200, height: int = 2000, timeout: float = 120) -> Path:
    return _run([f"--window-size={width},{height}", f"--screenshot={png}", "--virtual-time-budget=5000",
                 Path(html).resolve().as_uri()], png, timeout)
