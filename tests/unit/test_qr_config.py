"""The qr section of agent.yaml: peers as a list of mappings, clear one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fwagent.config import ConfigError, load_config

QR = """
qr:
  enabled: true
  ae_title: FWQR
  host: 0.0.0.0
  port: 11114
  max_results: 500
  tls: {enabled: false, cert: "", key: "", ca: "", require_client_cert: true}
  peers:
    - {ae_title: PACS, host: 10.0.0.9, port: 104, find: true, move: true, get: false}
    - {ae_title: VIEWER, host: 10.0.0.10, port: 11112}
"""


def test_qr_section_is_read(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(QR)
    qr = load_config(path, environ={"FWAGENT_QR_PORT": "2104"}).qr
    assert qr.enabled and qr.ae_title == "FWQR" and qr.port == 2104 and qr.max_results == 500
    pacs, viewer = qr.peers
    assert (pacs.ae_title, pacs.host, pacs.port, pacs.find, pacs.move, pacs.get) == (
        "PACS", "10.0.0.9", 104, True, True, False,
    )  # fmt: skip
    assert (viewer.find, viewer.move, viewer.get) == (True, True, True)


def test_qr_defaults_off(tmp_path: Path) -> None:
    assert load_config(None, environ={}).qr.enabled is False


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("qr: {peers: [{ae_title: PACS, colour: red}]}", "qr.peers"),
        ("qr: {peers: [{ae_title: ''}]}", "qr.peers[0].ae_title"),
        ("qr: {peers: [{ae_title: A}, {ae_title: A}]}", "qr.peers[1].ae_title"),
        ("qr: {peers: PACS}", "qr.peers"),
        ("qr: {max_results: 0}", "qr.max_results"),
        ("qr: {port: 70000}", "qr.port"),
        ("qr: {tls: {enabled: true}}", "qr.tls"),
    ],
)
def test_bad_qr_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_config(path, environ={})


def test_fwagent_qr_without_api_key_says_so(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "agent.yaml"
    path.write_text(f"spool_dir: {tmp_path}\nqr: {{enabled: true, peers: [{{ae_title: PACS}}]}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FWAGENT_")}
    done = subprocess.run(
        [sys.executable, "-m", "fwagent", "qr", "--config", str(path)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "fwagent qr: no Flywheel API key (flywheel.api_key)"
