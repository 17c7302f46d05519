"""``fwagent qr`` refuses to start without what it needs, in one line (the qr section's
keys and their errors are covered with the rest of agent.yaml in test_agent_config)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_fwagent_qr_without_api_key_says_so(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"spool_dir: {tmp_path}\n"
        "qr: {enabled: true, peers: [{ae_title: PACS, host: 127.0.0.1, port: 104}]}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FWAGENT_")}
    done = subprocess.run(
        [sys.executable, "-m", "fwagent", "qr", "--config", str(path)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "fwagent qr: no Flywheel API key (flywheel.api_key)"
