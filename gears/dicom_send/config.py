"""The gear's settings, read once from config.json (through fw-gear) into plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwmapping import SentTag

PROFILES = ("BCP195", "BCP195-ND", "BCP195-EX")


class ConfigError(ValueError):
    """A setting or input the gear cannot work with; the message is shown to the user."""


@dataclass(frozen=True)
class TlsSettings:
    enabled: bool = False
    profile: str = "BCP195"
    require_peer_cert: bool = True
    key: Path | None = None
    cert: Path | None = None
    ca: Path | None = None


@dataclass(frozen=True)
class SendConfig:
    destination: str
    called_ae: str
    calling_ae: str = "flywheel"
    port: int = 104
    file_download_retry_time: float = 10.0
    sent_tag: SentTag = SentTag()
    tls: TlsSettings = TlsSettings()


def parse_group(value: Any) -> int:
    """``0x0021``, ``0021``, ``21`` or 33 -> 0x0021; the group must be a private (odd) one."""
    if isinstance(value, int):
        group = value
    else:
        text = str(value).strip().lower()
        try:
            group = int(text, 16)
        except ValueError:
            raise ConfigError(
                f"group {value!r} is not a hexadecimal DICOM group like 0x0021"
            ) from None
    if not (group % 2 == 1 and 0x0009 <= group <= 0xFFFF):
        raise ConfigError(f"group {value!r} is not a private (odd) DICOM group like 0x0021")
    return group


def normalise_profile(value: Any) -> str:
    """Accept ``BCP 195``, ``bcp195-nd`` etc.; return one of :data:`PROFILES`."""
    text = str(value or "BCP195").strip().upper().replace(" ", "").replace("_", "-")
    if text not in PROFILES:
        raise ConfigError(f"tls_security_profile {value!r} is not one of {', '.join(PROFILES)}")
    return text


def _ae(value: Any, name: str) -> str:
    text = str(value or "").strip()
    if not text or len(text) > 16 or "\\" in text:
        raise ConfigError(f"{name} {value!r} must be 1 to 16 characters without backslash")
    return text


def load(opts: dict[str, Any], input_path: Any) -> SendConfig:
    """Build the settings from config options and ``input_path(name) -> path | None``."""
    destination = str(opts.get("destination") or "").strip()
    if not destination:
        raise ConfigError("destination (the DICOM peer's host name or IP address) is required")
    try:
        port = int(opts.get("port", 104))
    except (TypeError, ValueError):
        raise ConfigError(f"port {opts.get('port')!r} is not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is not a TCP port (1-65535)")
    try:
        tag = SentTag(
            group=parse_group(opts.get("group", "0x0021")),
            creator=str(opts.get("identifier", "Flywheel")),
            value=str(opts.get("tag_value", "DICOM send")),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    tls = TlsSettings(
        enabled=bool(opts.get("tls_enabled", False)),
        profile=normalise_profile(opts.get("tls_security_profile", "BCP195")),
        require_peer_cert=bool(opts.get("tls_require_peer_cert", True)),
        key=_path(input_path("key")),
        cert=_path(input_path("cert")),
        ca=_path(input_path("add_cert_file")),
    )
    if tls.enabled and (tls.key is None or tls.cert is None):
        raise ConfigError("tls_enabled needs both the key and the cert inputs")
    return SendConfig(
        destination=destination,
        called_ae=_ae(opts.get("called_ae"), "called_ae"),
        calling_ae=_ae(opts.get("calling_ae", "flywheel"), "calling_ae"),
        port=port,
        file_download_retry_time=float(opts.get("file_download_retry_time", 10)),
        sent_tag=tag,
        tls=tls,
    )


def _path(value: Any) -> Path | None:
    return Path(value) if value else None
