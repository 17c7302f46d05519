"""fwagent echo --config agent.yaml: C-ECHO our own SCPs and the peers, check Flywheel auth.

One line per check with a plain verdict; exit 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
from typing import Any

from fwagent.commands.common import add_config_argument, load_or_exit
from fwagent.config import AgentConfig, TlsConfig
from fwagent.tls import client_ssl_context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per check")


def c_echo(
    calling: str, called: str, host: str, port: int, tls: TlsConfig | None, timeout: float
) -> tuple[bool, str]:
    from fwmapping.dimse import AE, Verification

    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return False, f"nothing answers on {host}:{port} ({exc.strerror or exc})"
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(Verification)
    tls_args: Any = None
    if tls is not None and tls.enabled:
        try:
            tls_args = (client_ssl_context(tls), host)  # "" is refused by ssl
        except (OSError, ssl.SSLError) as exc:
            return False, f"cannot load TLS certificates: {exc}"
    assoc = ae.associate(host, port, ae_title=called, tls_args=tls_args)
    if assoc.is_rejected:
        return False, f"association rejected (is AE {calling!r} allowed there?)"
    if not assoc.is_established:
        return False, "association failed (wrong AE title, TLS mismatch, or refused host)"
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    code = getattr(status, "Status", None)
    if code == 0:
        return True, "C-ECHO answered success"
    return False, f"C-ECHO answered status {code!r}"


def flywheel_site(api_key: str) -> str:
    """The host[:port] part of an API key (``host:port:__force_insecure:KEY`` or ``host:KEY``)."""
    site = api_key.rsplit(":", 1)[0] if ":" in api_key else api_key
    return site.replace(":__force_insecure", "")


def flywheel_check(config: AgentConfig, timeout: float = 10.0) -> tuple[bool, str]:
    if not config.flywheel.api_key:
        return False, "no API key configured (flywheel.api_key or FWAGENT_FLYWHEEL_API_KEY)"
    site = flywheel_site(config.flywheel.api_key)
    # one attempt, bounded: the SDK otherwise retries a refused connection for ~2 minutes
    # (both are read when flywheel is first imported; an explicit environment wins)
    os.environ.setdefault("FLYWHEEL_SDK_TOTAL_RETRIES", "0")
    os.environ.setdefault("FLYWHEEL_SDK_CONNECT_TIMEOUT", str(max(1, int(timeout))))
    try:
        import flywheel

        client = flywheel.Client(config.flywheel.api_key)
        user = client.get_current_user()
    except Exception as exc:  # noqa: BLE001 - reported as a verdict
        status = getattr(exc, "status", None)
        if status == 401:
            return False, f"Flywheel rejected the API key (401) at {site}"
        if status:
            return False, f"Flywheel answered HTTP {status} at {site}"
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        return False, f"cannot reach Flywheel at {site}: {detail}"
    who = getattr(user, "id", None) or getattr(user, "email", None) or "?"
    return True, f"authenticated as {who} at {site}"


def state_check(config: AgentConfig) -> tuple[bool, str]:
    """The shared state database answers (state_url set)."""
    from fwagent.db import redact

    try:
        state = config.open_state()
    except Exception as exc:  # noqa: BLE001 - reported as a verdict
        return False, " ".join(str(exc).split())[:300]
    try:
        series = sum(state.count_by_state().values())
    finally:
        state.close()
    return True, f"PostgreSQL at {redact(config.state_url)}: {series} series"


def deid_check(config: AgentConfig) -> tuple[bool, str]:
    """The de-id profile as ``fwagent run`` would load it (validated in a worker process)."""
    from fwagent.deid import ProfileError
    from fwagent.deid.service import validate

    try:
        validate(config.deid.profile)
    except ProfileError as exc:
        return False, str(exc)
    return True, f"{config.deid.profile} loads and passes the site rules"


def main(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    if config.deid.profile:
        passed, detail = deid_check(config)
        if not passed:
            print(f"fwagent echo: bad de-id profile (deid.profile): {detail}", file=sys.stderr)
            return 2
        print(f"OK   de-id profile: {detail}")
    checks: list[tuple[str, tuple[bool, str]]] = []
    if config.push.enabled:
        p = config.push
        host = "127.0.0.1" if p.host in ("0.0.0.0", "") else p.host
        name = f"push SCP {p.ae_title}@{host}:{p.port}"
        calling = p.allowed_calling_aets[0] if p.allowed_calling_aets else "FWAGENT-ECHO"
        checks.append((name, c_echo(calling, p.ae_title, host, p.port, p.tls, args.timeout)))
    if config.pull.enabled:
        q = config.pull
        name = f"pull SCP {q.ae_title}@127.0.0.1:{q.port}"
        checks.append(
            (name, c_echo(q.ae_title, q.ae_title, "127.0.0.1", q.port, None, args.timeout))
        )
        peer = q.peer
        name = f"peer {peer.ae_title}@{peer.host}:{peer.port}"
        checks.append(
            (name, c_echo(q.ae_title, peer.ae_title, peer.host, peer.port, q.tls, args.timeout))
        )
    if config.qr.enabled:
        r = config.qr
        host = "127.0.0.1" if r.host in ("0.0.0.0", "") else r.host
        name = f"Q/R SCP {r.ae_title}@{host}:{r.port}"
        if r.peers:
            calling = r.peers[0].ae_title  # only registered peers may associate
            checks.append((name, c_echo(calling, r.ae_title, host, r.port, r.tls, args.timeout)))
        else:
            checks.append((name, (False, "no qr.peers registered: every peer is refused")))
    if config.state_url:
        checks.append(("shared state", state_check(config)))
    checks.append(("Flywheel", flywheel_check(config, args.timeout)))
    ok = True
    for name, (passed, detail) in checks:
        ok = ok and passed
        print(f"{'OK  ' if passed else 'FAIL'} {name}: {detail}")
    return 0 if ok else 1
