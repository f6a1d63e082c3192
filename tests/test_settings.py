"""Start-up settings that only show in a fresh server process."""

import os
import subprocess
import sys

from devtools.servers import ROOT

PROBE = "import gc, chatproject.asgi; print(gc.get_threshold())"


def start_server_module(**env: str) -> subprocess.CompletedProcess:
    """Import the ASGI application the way daphne does, in a new process."""
    inherited = {name: value for name, value in os.environ.items() if name != "GC_THRESHOLDS"}
    environment = {**inherited, "DJANGO_DEBUG": "1", "DJANGO_SETTINGS_MODULE": "chatproject.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_the_server_collects_young_garbage_rarely_by_default():
    result = start_server_module()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(50000, 1, 1)"


def test_gc_thresholds_can_be_set_and_bad_ones_stop_the_server():
    assert start_server_module(GC_THRESHOLDS="700,10,10").stdout.strip() == "(700, 10, 10)"
    for bad in ("700,10", "0,1,1", "a,b,c"):
        result = start_server_module(GC_THRESHOLDS=bad)
        assert result.returncode != 0
        assert "GC_THRESHOLDS must be three integers" in result.stderr
