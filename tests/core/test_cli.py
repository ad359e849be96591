"""The wow-gym command: --help lists every subcommand; each subcommand's --help shows its config."""

import os
import subprocess
import sys

import pytest

from wow_gym.cli import SUBCOMMANDS, main
from wow_gym.console import VERBOSE_VARIABLE, verbose


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_unknown_command_fails_with_usage(capsys):
    assert main(["train-everything"]) == 2
    assert "unknown command 'train-everything'" in capsys.readouterr().err


@pytest.mark.parametrize("name", [n for n in SUBCOMMANDS if n != "bench"])
def test_subcommand_help_shows_its_config(name, capsys):
    assert main([name, "--help"]) == 0
    assert "override any key with key=value" in capsys.readouterr().out


def test_ship_policy_is_a_subcommand(capsys):
    assert main(["--help"]) == 0
    assert "ship-policy" in capsys.readouterr().out
    assert main(["ship-policy", "--help"]) == 0
    assert "checkpoint: null" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="pass checkpoint="):
        main(["ship-policy"])


def test_verbose_flag_reaches_subprocesses_through_the_environment(monkeypatch, capsys):
    monkeypatch.setenv(VERBOSE_VARIABLE, "0")
    assert not verbose()
    assert main(["-v", "ship-policy", "--help"]) == 0, "-v is not passed on to the command as an override"
    assert os.environ[VERBOSE_VARIABLE] == "1" and verbose()


def test_bench_needs_a_target(capsys):
    assert main(["bench"]) == 2
    assert main(["bench", "sim", "--help"]) == 0
    assert "steps" in capsys.readouterr().out


def test_bad_override_is_reported():
    with pytest.raises(SystemExit, match="arguments must be key=value"):
        main(["collect", "lift"])
    with pytest.raises(SystemExit, match="bad override"):
        main(["collect", "no_such_key=3"])


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "wow_gym.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "collect" in done.stdout
