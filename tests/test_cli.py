"""Every command of the console script answers --help."""

import pytest
from typer.testing import CliRunner

from citizen_voice.cli import app

COMMANDS = [[], ["demo"], ["prepare"], ["ingest"], ["run"], ["bulletin"], ["sandbox"], ["sandbox", "generate"],
            ["sandbox", "serve"], ["sandbox", "seeds"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_unknown_ingest_source_is_a_clear_error():
    result = CliRunner().invoke(app, ["ingest", "nosuchsystem"])
    assert result.exit_code != 0
    assert "unknown source 'nosuchsystem'" in result.output


def test_sandbox_generate_writes_a_city(tmp_path):
    result = CliRunner().invoke(app, ["sandbox", "generate", "--days", "3", "--orders-per-day", "20",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "manifest.json").exists()
    assert (tmp_path / "systems" / "hotline.sqlite").exists()
