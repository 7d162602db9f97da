"""The names both sides give things on the wire (dtn_protocol.api)."""

from __future__ import annotations

import hashlib

from dtn_protocol.api import AGENT_TOKEN_PREFIX, PERSONAL_TOKEN_PREFIX, certificate_fingerprint


def test_a_certificate_is_named_by_the_sha256_of_its_der_in_pairs_of_hex_digits():
    der = b"0\x82\x01\x00 not really a certificate"
    fingerprint = certificate_fingerprint(der)
    assert fingerprint.replace(":", "") == hashlib.sha256(der).hexdigest()
    assert len(fingerprint) == 95 and fingerprint.count(":") == 31


def test_each_kind_of_token_says_what_it_is():
    assert AGENT_TOKEN_PREFIX == "dtn_agent_" and PERSONAL_TOKEN_PREFIX == "dtn_pat_"
