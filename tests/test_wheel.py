"""The built wheel works outside the checkout: configs ship inside the package, the command
line and the Python API run from a fresh virtual environment in another directory.

The fresh environment gets the wheel alone (``--no-deps``); the heavy dependencies
(PyTorch...) are borrowed from the test environment's site-packages by a path line, which
adds their directory without the checkout's editable install."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import TINY_MODEL_SETS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# the tests' tiny model (the installed mia gets it as --set overrides), trained one epoch a
# step: the wheel only has to train and score, not to learn
TINY = TINY_MODEL_SETS + ["train.batch_size=16", "data.text_workers=1", "steps.step1.epochs=1",
                          "steps.step2.epochs=1", "steps.step3.epochs=1"]


def run(cmd, cwd, env=None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(ROOT)],
        cwd=work)
    (wheel,) = (work / "dist").glob("mia_reid-*.whl")
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel)], cwd=work)
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
               cwd=work).strip()
    (Path(site) / "borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return work, venv, env


def test_installed_wheel_trains_and_scores_outside_the_checkout(fresh_env):
    work, venv, env = fresh_env
    mia = str(venv / "bin" / "mia")
    where = run([str(venv / "bin" / "python"), "-c", "import mia; print(mia.__file__)"],
                cwd=work, env=env)
    assert where.startswith(str(venv)), where  # the wheel, not the checkout
    assert run([mia, "--version"], cwd=work, env=env).startswith("mia ")
    run([mia, "data", "synth", "--out", "synth", "--ids", "20", "--seed", "1"], cwd=work,
        env=env)
    sets = [a for s in TINY for a in ("--set", s)]
    run([mia, "-q", "train", "--config", "demo/mia", "--data", "synth", "--out", "run",
         "--no-progress", *sets], cwd=work, env=env)
    script = ("import json, mia\n"
              "from mia.data.reader import open_dataset\n"
              "ds = open_dataset('synth')\n"
              "recs = ds.split('test')\n"
              "m = mia.load('run', device='cpu')\n"
              "s = m.score(m.encode_images([ds.image_path(r) for r in recs]),\n"
              "            m.encode_texts([r.captions[0] for r in recs]))\n"
              "print(json.dumps({k: list(v.shape) for k, v in s.items()}))\n")
    shapes = run([str(venv / "bin" / "python"), "-c", script], cwd=work, env=env)
    assert '"sF": [' in shapes
