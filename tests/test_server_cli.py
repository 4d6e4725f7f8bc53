"""``flame-reward serve``: argument errors, and (model) the embedded default served from a
subprocess answering a client in this process, then stopped with SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from flame_reward.cli import main
from tests.server_helpers import stops_its_threads  # noqa: F401 (autouse fixture)


def test_serve_is_registered_and_checks_arguments(capsys, tmp_path):
    from flame_reward.plugins import get_plugin_manager
    from flame_reward.sidecar import command

    assert get_plugin_manager().get_plugin("flame_reward.sidecar.command") is command
    assert main(["serve", "--tls-cert", str(tmp_path / "cert.pem")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tls-key" in err[0]
    assert main(["serve", "--max-queue", "0"]) == 2
    assert "--max-queue" in capsys.readouterr().err
    assert main(["serve", "--token-file", str(tmp_path / "missing")]) == 2
    assert "--token-file" in capsys.readouterr().err
    for flag in ("--max-field-chars", "--max-batch-chars", "--max-inflight-mb", "--max-batch-seconds"):
        assert main(["serve", flag, "0" if flag != "--max-batch-seconds" else "-1"]) == 2
        assert flag in capsys.readouterr().err
    # A refused start leaves no log handler behind on capsys' stream (closed after this test).
    from flame_reward.sidecar.observability import log

    assert not [h for h in log.handlers if type(h) is logging.StreamHandler] and log.propagate


@pytest.mark.model
def test_serve_embedded_default_in_a_subprocess(tmp_path, embedded_judge):
    from flame_reward.sidecar.client import RewardClient

    port_file = tmp_path / "port"
    log_path = tmp_path / "serve.log"
    env = {**os.environ, "FLAME_REWARD_NO_PLUGINS": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flame_reward.cli", "serve", "--host", "127.0.0.1", "--port", "0",
             "--port-file", str(port_file), "--batch-size", "4", "--max-length", "1024", "--grace", "10",
             "--threads", "1"],
            stdout=subprocess.DEVNULL, stderr=log, env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while not port_file.exists():
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "no port file after 60 s"
                time.sleep(0.1)
            port = int(port_file.read_text())
            with RewardClient(f"127.0.0.1:{port}", timeout=60, retries=0) as client:
                client.wait_until_serving(timeout=180)
                got = client.compare("What is 2+2?", "4", "5")
                want = embedded_judge.compare("What is 2+2?", "4", "5")
                assert got.label == want.label and abs(got.score - want.score) < 1e-3
                assert client.task_types()["pairwise"].pairwise
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    events = [json.loads(line)["event"] for line in log_path.read_text().splitlines() if line.startswith("{")]
    for name in ("listening", "loading", "serving", "rpc", "batch", "stopping", "stopped"):
        assert name in events, (name, events)
