"""The key=value scripts (predict, export, rank): ``-h``/``--help`` prints the usage on stdout and exits 0; wrong
arguments stay the one-line usage error with exit code 2."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPTS = ("predict", "export", "rank")


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_the_usage_on_stdout_and_exits_0(script, flag, capsys):
    main = importlib.import_module(f"transferlab.{script}").main
    assert main([flag]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: python -m transferlab.{script} ") and "output=" in out and err == ""
    assert main(["output=x.csv", flag]) == 0  # anywhere on the line, before any other check


@pytest.mark.parametrize("script,args", [("predict", ["input=photos"]), ("predict", ["ckpt=a", "input=b", "topk"]),
                                         ("export", ["ckpt=a", "colour=red"]), ("rank", ["data=digits"])])
def test_wrong_arguments_are_the_one_line_usage_error(script, args, capsys):
    assert importlib.import_module(f"transferlab.{script}").main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"transferlab: error: usage: python -m transferlab.{script} ")
    assert len(err.splitlines()) == 1


def test_help_from_the_command_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "transferlab.predict", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m transferlab.predict")
    assert "transferlab: error" not in result.stderr and not list(tmp_path.iterdir())  # nothing written
