"""PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True unless the user set it, before torch is imported (issue 18)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from animate_cli import config as C
from animate_cli.cli.common import default_alloc_conf

PROBE = """
import json, os, sys
from animate_cli.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps({k: os.environ.get(k) for k in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")} | {"torch": "torch" in sys.modules}))
"""


def test_set_only_when_the_user_set_neither_name():
    env = {}
    assert default_alloc_conf(env) == "expandable_segments:True" and env == {"PYTORCH_CUDA_ALLOC_CONF": C.CUDA_ALLOC_CONF}
    for name in C.CUDA_ALLOC_CONF_ENVS:
        env = {name: "max_split_size_mb:512"}
        assert default_alloc_conf(env) is None and env == {name: "max_split_size_mb:512"}


@pytest.mark.parametrize("user", [None, "backend:cudaMallocAsync"])
def test_every_command_sets_it_before_torch_is_imported(user):
    env = {k: v for k, v in os.environ.items() if k not in C.CUDA_ALLOC_CONF_ENVS}
    if user:
        env["PYTORCH_CUDA_ALLOC_CONF"] = user
    proc = subprocess.run([sys.executable, "-c", PROBE, "run", "--help"], capture_output=True, text=True, env=env)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"PYTORCH_CUDA_ALLOC_CONF": user or C.CUDA_ALLOC_CONF, "PYTORCH_ALLOC_CONF": None, "torch": False}
