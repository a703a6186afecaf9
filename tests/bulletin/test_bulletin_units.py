"""The bulletin's small pieces: periods, wording with figures, configuration errors, Chinese glyphs in
headless Chromium."""

from __future__ import annotations

from datetime import date

import pytest

from citizen_voice.bulletin.render import load_config
from citizen_voice.bulletin.sections import BulletinPeriod, change, fill, pct


def test_periods():
    month = BulletinPeriod.parse("2026-02")
    assert (month.kind, month.start, month.end, month.label) == ("monthly", date(2026, 2, 1), date(2026, 2, 28),
                                                                 "2026年2月")
    week = BulletinPeriod.parse("2026-W36")
    assert (week.kind, week.start, week.end) == ("weekly", date(2026, 8, 31), date(2026, 9, 6))
    assert BulletinPeriod.parse("2026-12").end == date(2026, 12, 31)
    with pytest.raises(ValueError, match="YYYY-MM"):
        BulletinPeriod.parse("2026/10")


def test_wording_marks_every_figure_and_escapes_text():
    html = fill("共受理 {received} 件，满意率 {rate} <b>", {"received": "4,121", "rate": "89.53%"},
                {"received": 4121, "rate": 0.8953})
    assert '<strong data-figure="received" data-value="4121">4,121</strong>' in html
    assert '<strong data-figure="rate" data-value="0.8953">89.53%</strong>' in html
    assert "&lt;b&gt;" in html
    with pytest.raises(KeyError, match="unknown_figure"):
        fill("{unknown_figure}", {}, {})


def test_formats():
    assert pct(0.88812) == "88.81%" and pct(None) == "—"
    assert change(0.016) == "上升 1.60%" and change(-0.016) == "下降 1.60%"
    assert change(None) == "无可比数据" and change(0.0) == "持平"


def test_unknown_section_in_configuration_is_named(tmp_path):
    config = tmp_path / "bulletin.yaml"
    config.write_text("city_name: 海滨市\ntitle: t\nissuer: i\nfooter: f\nmonthly:\n  - {key: horoscope, title: 星座}\n"
                      "weekly: []\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown sections \\['horoscope'\\]"):
        load_config(config)


def test_shipped_configuration_loads():
    config = load_config()
    assert [s.key for s in config.monthly] == ["overview", "hot_topics", "warnings", "handling", "assessment",
                                              "data_quality", "cases"]


def test_chromium_renders_chinese_glyphs(tmp_path):
    """Two different Chinese words must give different pixels: with no CJK font both would be rows of
    identical 'tofu' boxes."""
    from citizen_voice.bulletin.browser import screenshot

    shots = []
    for word in ("市民之声", "热线月报"):
        page = tmp_path / f"{len(shots)}.html"
        page.write_text(f'<html><body style="margin:0;background:#fff"><p style="font-size:64px;'
                        f'font-family:Noto Sans CJK SC,sans-serif">{word}</p></body></html>', encoding="utf-8")
        shots.append(screenshot(page, tmp_path / f"{len(shots)}.png", width=400, height=150).read_bytes())
    assert shots[0] != shots[1]


def test_a_chinese_font_is_installed_for_chromium():
    """make setup installs fonts-noto-cjk; without a font covering Chinese the PDF shows boxes."""
    import subprocess

    families = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=True).stdout
    assert "Noto Sans CJK SC" in families
