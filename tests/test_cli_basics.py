"""The CLI answers --help and argument errors without importing torch, and user errors exit 2."""

import json
import subprocess
import sys

import pytest


def convzoo(*args, check=False):
    return subprocess.run([sys.executable, "-m", "convzoo", *args], capture_output=True, text=True, check=check)


def test_help_does_not_import_torch():
    code = "import sys, convzoo.cli as c; c.build_parser(); assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_lists_models_command():
    out = convzoo("--help", check=True).stdout
    assert "models" in out


def test_unknown_model_suggests_close_matches():
    res = convzoo("summary", "lenet9")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    # the closest registered name comes first
    assert res.stderr.startswith("convzoo summary: error: unknown model 'lenet9'; did you mean lenet5, "), res.stderr
    # a pattern that matches nothing says so, and where the names are
    res = convzoo("models", "lenet9*")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == "convzoo models: error: no model matches 'lenet9*'; `convzoo models` lists them all"


def test_models_json():
    rows = json.loads(convzoo("models", "lenet5", "--json", check=True).stdout)
    assert rows[0]["name"] == "lenet5" and rows[0]["params"] == 61_706


def test_create_model_unknown_name():
    import convzoo
    from convzoo.errors import UnknownModelError

    with pytest.raises(UnknownModelError, match="lenet5"):
        convzoo.create_model("lenet")
