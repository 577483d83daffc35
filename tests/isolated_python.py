"""Running code where actionpose is not installed: what a served MLflow model sees."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_without_actionpose(script: str, *args: str, cwd: Path) -> dict:
    """Run ``script`` in a Python that sees this environment's packages but not an installed actionpose:
    ``-S`` skips the .pth files (an editable install's import hook lives in one) and the site folders are
    put back on the path by hand. A model must then bring its own actionpose code."""
    import site

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(site.getsitepackages()))
    done = subprocess.run([sys.executable, "-S", "-c", script, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
