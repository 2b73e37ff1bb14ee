"""The ``fastgram`` command."""

import json
import os
import subprocess
import sys

import pytest

from fastgram import cli


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "fastgram.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_info_lists_every_backend_with_its_state():
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("reference", "triton", "ext"):
        assert f"  {name}" in out
    assert "torch" in out and "python" in out and "devices" in out
    assert "reference  available" in out


def test_info_json_matches_backends():
    import fastgram

    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert set(info["backends"]) == {"reference", "triton", "ext"}
    assert info["backends"]["reference"]["available"] is True
    for status in info["backends"].values():
        assert status["available"] == (status["reason"] is None)
    assert info["fastgram"] == fastgram.__version__


def test_info_reports_the_env_backend_and_survives_a_bad_one():
    assert '"backend_in_force": "reference"' in run_cli(
        "info", "--json", env={"FASTGRAM_BACKEND": "reference"}
    ).stdout
    bad = run_cli("info", env={"FASTGRAM_BACKEND": "turbo"})
    assert bad.returncode == 0 and "invalid" in bad.stdout


def test_every_subcommand_has_help(capsys):
    for name, *_ in cli.COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: fastgram {name}" in capsys.readouterr().out


def test_missing_or_unknown_command_exits_non_zero(capsys):
    for argv in ([], ["frobnicate"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
    assert "usage: fastgram" in capsys.readouterr().err


def test_console_script_is_installed():
    import shutil

    script = shutil.which("fastgram", path=os.path.dirname(sys.executable))
    assert script, "the fastgram console script is not installed beside this python"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("fastgram ")
