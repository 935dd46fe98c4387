"""The platform's own CA, without a proxy (served by Traefik: test_proxy_routing)."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from press_selfhosted.engine.clients import platform_ca
from press_selfhosted.engine.errors import ValidationError

NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def authority() -> platform_ca.Authority:
	return platform_ca.Authority.create("press_selfhosted test CA", now=NOW)


def test_the_root_domains_certificate_covers_every_site_and_suits_press(authority):
	issued = authority.issue(platform_ca.root_domain_names("platform.example.com"), now=NOW)
	leaf = x509.load_pem_x509_certificate(issued.certificate.encode())
	names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
		x509.DNSName
	)
	assert names == ["*.platform.example.com", "platform.example.com"]
	assert issued.not_after == NOW + datetime.timedelta(days=platform_ca.LEAF_DAYS)
	assert authority.issued(issued.certificate)
	assert issued.full_chain == issued.certificate + authority.certificate
	# Press keeps certificates it did not obtain as provider "Other" records and checks their RSA size
	key = leaf.public_key()
	assert isinstance(key, rsa.RSAPublicKey) and key.key_size == platform_ca.LEAF_KEY_BITS
	assert "PRIVATE KEY" not in repr(issued) and "PRIVATE KEY" not in repr(authority)


def test_another_authoritys_certificate_is_not_ours(authority):
	other = platform_ca.Authority.create("another CA", now=NOW)
	assert not authority.issued(other.issue(["shop.example.com"], now=NOW).certificate)
	assert not authority.issued("not a certificate")


def test_renewal_is_due_thirty_days_before_the_end():
	authority = platform_ca.Authority.create("renewals", now=NOW)
	issued = authority.issue(["shop.example.com"], now=NOW)
	assert not platform_ca.renewal_due(issued.certificate, now=NOW)
	assert not platform_ca.renewal_due(issued.certificate, now=issued.not_after - datetime.timedelta(days=31))
	assert platform_ca.renewal_due(issued.certificate, now=issued.not_after - datetime.timedelta(days=29))
	assert platform_ca.renewal_due("not a certificate", now=NOW)


@pytest.mark.parametrize(
	("name", "words"),
	[
		("10.0.0.5", "an IP address"),
		("*.10.0.0.5", "an IP address"),
		("bad name.example.com", "spaces"),
		("", ""),
	],
)
def test_a_name_that_is_not_a_domain_is_refused_with_the_field(authority, name, words):
	with pytest.raises(ValidationError) as refused:
		authority.issue([name], now=NOW)
	assert "names" in str(refused.value) and words in str(refused.value)
