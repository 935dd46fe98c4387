"""The platform's own certificate authority, for LAN and air-gapped installs where no ACME server is
reachable: it issues the root domain's wildcard (and its bare name), which the proxy serves by SNI, and
renews it before it lapses. Clients trust the CA's certificate, which the operator hands out.

The leaf's key is RSA because Press keeps certificates it did not obtain as TLS Certificate records of
provider "Other", and checks those keys' RSA size. The CA's own key never leaves the caller's store
(encrypted there); nothing here logs a key.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from press_selfhosted.engine.clients import acme
from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.engine.validation import validate_fqdn

AUTHORITY_YEARS = 10
LEAF_DAYS = 90  # as ACME's: renewal is exercised, and a leaked key lapses soon
RENEW_BEFORE = datetime.timedelta(days=30)
LEAF_KEY_BITS = 2048  # Press's default rsa_key_size for TLS Certificate records


@dataclass(frozen=True)
class Issued:
	certificate: str  # the leaf, PEM
	chain: str  # the CA's certificate, PEM: what clients must trust
	private_key: str = field(
		repr=False
	)  # the leaf's, PEM (PKCS#8, unencrypted: the caller stores it encrypted)

	@property
	def full_chain(self) -> str:
		return self.certificate + self.chain

	@property
	def serial(self) -> int:
		return x509.load_pem_x509_certificate(self.certificate.encode()).serial_number

	@property
	def not_after(self) -> datetime.datetime:
		return acme.not_after(x509.load_pem_x509_certificate(self.certificate.encode()))


@dataclass(frozen=True)
class Authority:
	certificate: str  # PEM, self-signed
	private_key: str = field(repr=False)  # PEM (PKCS#8, unencrypted: the caller stores it encrypted)

	@classmethod
	def create(cls, common_name: str, now: datetime.datetime | None = None) -> Authority:
		now = now or _now()
		key = ec.generate_private_key(ec.SECP256R1())
		name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
		certificate = (
			x509.CertificateBuilder()
			.subject_name(name)
			.issuer_name(name)
			.public_key(key.public_key())
			.serial_number(x509.random_serial_number())
			.not_valid_before(now - datetime.timedelta(minutes=5))
			.not_valid_after(now + datetime.timedelta(days=365 * AUTHORITY_YEARS))
			.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
			.add_extension(
				x509.KeyUsage(
					digital_signature=True,
					key_cert_sign=True,
					crl_sign=True,
					content_commitment=False,
					key_encipherment=False,
					data_encipherment=False,
					key_agreement=False,
					encipher_only=False,
					decipher_only=False,
				),
				critical=True,
			)
			.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
			.sign(key, hashes.SHA256())
		)
		return cls(_pem(certificate), _key_pem(key))

	def issue(
		self, names: Sequence[str], now: datetime.datetime | None = None, days: int = LEAF_DAYS
	) -> Issued:
		"""A server certificate for ``names`` (DNS names, ``*.`` wildcards allowed), signed by this CA."""
		checked = [_checked_name(name) for name in names]
		if not checked:
			raise ValidationError(
				"names", "", "no name to certify", "give the root domain, e.g. platform.example.com"
			)
		now = now or _now()
		authority = x509.load_pem_x509_certificate(self.certificate.encode())
		authority_key = serialization.load_pem_private_key(self.private_key.encode(), password=None)
		key = rsa.generate_private_key(public_exponent=65537, key_size=LEAF_KEY_BITS)
		certificate = (
			x509.CertificateBuilder()
			.subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, checked[0])]))
			.issuer_name(authority.subject)
			.public_key(key.public_key())
			.serial_number(x509.random_serial_number())
			.not_valid_before(now - datetime.timedelta(minutes=5))
			.not_valid_after(min(now + datetime.timedelta(days=days), acme.not_after(authority)))
			.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in checked]), critical=False)
			.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
			.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
			.add_extension(
				x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()), critical=False
			)
			.sign(authority_key, hashes.SHA256())
		)
		return Issued(_pem(certificate), self.certificate, _key_pem(key))

	def issued(self, certificate_pem: str) -> bool:
		"""Did this CA sign ``certificate_pem``?"""
		try:
			leaf = x509.load_pem_x509_certificate(certificate_pem.encode())
			authority = x509.load_pem_x509_certificate(self.certificate.encode())
			leaf.verify_directly_issued_by(authority)
		except (ValueError, TypeError, InvalidSignature):
			return False
		return True


def renewal_due(certificate_pem: str, now: datetime.datetime | None = None) -> bool:
	"""True when the certificate lapses within RENEW_BEFORE (or cannot be read)."""
	try:
		leaf = x509.load_pem_x509_certificate(certificate_pem.encode())
	except ValueError:
		return True
	return acme.not_after(leaf) - (now or _now()) < RENEW_BEFORE


def root_domain_names(domain: str) -> list[str]:
	"""What a root domain's certificate covers: every site under it, and the bare name."""
	return [f"*.{domain}", domain]


def _checked_name(name: str) -> str:
	bare = name.removeprefix("*.")
	try:
		ipaddress.ip_address(bare)
	except ValueError:
		return ("*." if name.startswith("*.") else "") + validate_fqdn(bare, "names")
	raise ValidationError(
		"names", name, "an IP address, not a DNS name", "certify the domain sites are named under"
	)


def _now() -> datetime.datetime:
	return datetime.datetime.now(datetime.timezone.utc)


def _pem(certificate: x509.Certificate) -> str:
	return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key) -> str:
	return key.private_bytes(
		serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
	).decode()
