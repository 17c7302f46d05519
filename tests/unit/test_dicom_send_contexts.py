"""Presentation-context planning, settings parsing and the TLS profiles."""

from __future__ import annotations

import ssl

import pytest
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    MRImageStorage,
    RLELossless,
)

from gears.dicom_send import config, contexts, tls
from gears.dicom_send.gear import status_of


def test_one_context_per_class_and_syntax_plus_uncompressed_fallback() -> None:
    [assoc] = contexts.plan(
        {
            (MRImageStorage, JPEGBaseline8Bit),
            (MRImageStorage, RLELossless),
            (CTImageStorage, ExplicitVRLittleEndian),
        }
    )
    assert sorted((a, tuple(s)) for a, s in assoc) == sorted(
        [
            (CTImageStorage, (ExplicitVRLittleEndian,)),
            (CTImageStorage, (ImplicitVRLittleEndian,)),
            (MRImageStorage, (JPEGBaseline8Bit,)),
            (MRImageStorage, (RLELossless,)),
            (MRImageStorage, (ExplicitVRLittleEndian, ImplicitVRLittleEndian)),
        ]
    )


def test_more_than_128_contexts_are_split_keeping_each_class_together() -> None:
    pairs = {(f"1.2.3.{n}", JPEGBaseline8Bit) for n in range(130)}
    plan = contexts.plan(pairs)
    assert [len(group) for group in plan] == [128, 128, 4]  # 2 contexts per class
    seen = [{a for a, _ in group} for group in plan]
    assert sum(len(s) for s in seen) == 130 and not set.intersection(*seen)
    assert all(len(contexts.build(group)) == len(group) for group in plan)


def test_report_status_rule() -> None:
    assert status_of(3, 3) == "Complete"
    assert status_of(3, 1) == "Incomplete"
    assert status_of(3, 0) == "Failed"
    assert status_of(0, 0) == "Failed"


@pytest.mark.parametrize(
    ("value", "group"), [("0x0021", 0x21), ("0021", 0x21), ("0X0023", 0x23), (0x29, 0x29)]
)
def test_group_parsing(value: object, group: int) -> None:
    assert config.parse_group(value) == group


@pytest.mark.parametrize("value", ["0x0020", "zz", "0x0001"])
def test_bad_group_is_a_clear_error(value: str) -> None:
    with pytest.raises(config.ConfigError, match="group"):
        config.parse_group(value)


def test_settings_from_options() -> None:
    opts = {"destination": " pacs.example ", "called_ae": "PACS", "tls_security_profile": "BCP 195"}
    cfg = config.load(opts, lambda name: None)
    assert (cfg.destination, cfg.port, cfg.calling_ae) == ("pacs.example", 104, "flywheel")
    assert cfg.tls.profile == "BCP195" and cfg.sent_tag.group == 0x21
    with pytest.raises(config.ConfigError, match="key and the cert"):
        config.load({**opts, "tls_enabled": True}, lambda name: None)
    with pytest.raises(config.ConfigError, match="tls_security_profile"):
        config.load({**opts, "tls_security_profile": "SSLv3"}, lambda name: None)
    with pytest.raises(config.ConfigError, match="called_ae"):
        config.load({**opts, "called_ae": "X" * 17}, lambda name: None)


@pytest.mark.parametrize(
    ("profile", "minimum", "maximum", "count"),
    [
        ("BCP195", ssl.TLSVersion.TLSv1, ssl.TLSVersion.MAXIMUM_SUPPORTED, 5),
        ("BCP195-ND", ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED, 4),
        ("BCP195-EX", ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, 6),
    ],
)
def test_tls_profiles_as_dcmtk_defines_them(
    profile: str, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion, count: int
) -> None:
    context = tls.client_context(config.TlsSettings(enabled=True, profile=profile))
    assert context.minimum_version == minimum and context.maximum_version == maximum
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"]
    assert len(tls12) == count
    assert all("GCM" in name for name in tls12 if name != "AES128-SHA")
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname
    loose = tls.client_context(config.TlsSettings(True, profile, require_peer_cert=False))
    assert loose.verify_mode == ssl.CERT_NONE
