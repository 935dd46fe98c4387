"""TLS for sites on a container Proxy Server when Press issues no certificate for them.

With a Root Domain whose ``dns_provider`` is Generic, Press makes no wildcard certificate, so the
sites ``<sub>.<root domain>`` get theirs from the proxy itself, in one of two ways:

- an ACME resolver (:class:`AcmeResolver`): Traefik asks the ACME server (Let's Encrypt, or a private
  one such as step-ca) for each site's name, answering HTTP-01 on the ``web`` entry point. Its account
  and certificates live in ``acme.json`` in a named volume, so a recreated container keeps them.
- a default certificate (:class:`DefaultCertificate`), typically a wildcard for the root domain signed
  by the operator's own CA; Traefik serves it for every name without a better match.

Custom domains keep the certificates Press sends with ``Add Host to Proxy`` (Traefik picks a host's
certificate by SNI); one Press sends without a certificate is certified by the resolver like a site
name (``SiteRoute.acme_domains``).

A root domain's wildcard needs DNS-01 (:class:`DnsChallenge`): a second resolver ``<name>-dns`` beside
the HTTP-01 one, with any DNS provider of Traefik's ACME client (lego). Its credentials are files in
the ACME volume (mode 0400); the container's environment only names them (``<VAR>_FILE``, which lego
reads), so no secret is in ``docker inspect``, an argument or a label. A document in the dynamic
directory (:func:`wildcard_files`) asks that resolver for ``*.<domain>`` and ``<domain>``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.engine.validation import validate_ca_bundle, validate_fqdn

ACME_DIRECTORY = "/etc/traefik/acme"
ACME_STORAGE = f"{ACME_DIRECTORY}/acme.json"
ACME_CA_BUNDLE = f"{ACME_DIRECTORY}/ca.pem"
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
KEY_TYPES = ("EC256", "EC384", "RSA2048", "RSA4096")
# One simple address: the ACME server only needs somewhere to send expiry notices.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

DEFAULT_CERTIFICATE_FILE = "tls_default.yml"
DEFAULT_CERTIFICATE_DIRECTORY = "certs/_default"  # under the dynamic directory; '_' is in no host name

CONFIG_EMAIL = "press_selfhosted_acme_email"
CONFIG_DIRECTORY = "press_selfhosted_acme_directory"
CONFIG_CA_BUNDLE = "press_selfhosted_acme_ca_bundle"
CONFIG_SERVER_NAME = "press_selfhosted_acme_server_name"
CONFIG_CERTIFICATES_DURATION = "press_selfhosted_acme_certificates_duration"
CONFIG_CERTIFICATE = "press_selfhosted_default_certificate"
CONFIG_CERTIFICATE_KEY = "press_selfhosted_default_certificate_key"


@dataclass(frozen=True)
class AcmeResolver:
	"""Traefik's certificate resolver. ``ca_bundle`` (PEM) is trusted for the ACME server's own
	HTTPS (a private ACME server); ``server_name`` is the name on that server's certificate when the
	directory URL reaches it under another address."""

	email: str
	directory_url: str = LETS_ENCRYPT
	ca_bundle: str = ""
	server_name: str = ""
	key_type: str = "EC256"
	name: str = "acme"
	# how long the ACME server's certificates hold, in hours (Traefik's certificatesDuration): Traefik
	# checks for renewals once a day when it is 90 days, every minute when it is under a day
	certificates_duration: int = 2160

	def __post_init__(self):
		if not isinstance(self.email, str) or not EMAIL.match(self.email):
			raise ValidationError(
				CONFIG_EMAIL,
				self.email,
				"an e-mail address is required to register with the ACME server",
				f"set it: bench --site <site> set-config {CONFIG_EMAIL} ops@example.com",
			)
		if not isinstance(self.directory_url, str) or not re.match(
			r"^https://[^\s/]+/\S*$", self.directory_url
		):
			raise ValidationError(
				CONFIG_DIRECTORY,
				self.directory_url,
				"the ACME directory must be an https:// URL",
				f"give the directory URL of your ACME server, e.g. {LETS_ENCRYPT}",
			)
		validate_ca_bundle(self.ca_bundle, CONFIG_CA_BUNDLE)
		duration = self.certificates_duration
		if not isinstance(duration, int) or isinstance(duration, bool) or not 1 <= duration <= 24 * 3650:
			raise ValidationError(
				CONFIG_CERTIFICATES_DURATION,
				duration,
				"the lifetime of the ACME server's certificates must be a whole number of hours (1 to 87600)",
				"give it in hours: 2160 for Let's Encrypt's 90 days, 160 for its six-day certificates",
			)
		if self.key_type not in KEY_TYPES:
			raise ValidationError("key_type", self.key_type, f"one of {', '.join(KEY_TYPES)}", "pick one")

	def arguments(self, dns: DnsChallenge | None = None) -> tuple[str, ...]:
		"""Traefik's static configuration of the resolver, as command-line flags; with ``dns``, also of
		the DNS-01 resolver :attr:`dns_name` (same ACME server and account file)."""
		flags = [
			*self._account_flags(self.name),
			f"--certificatesresolvers.{self.name}.acme.httpchallenge=true",
			f"--certificatesresolvers.{self.name}.acme.httpchallenge.entrypoint=web",
		]
		if dns:
			flags += [*self._account_flags(self.dns_name), *dns.arguments(self.dns_name)]
		return tuple(flags)

	def _account_flags(self, name: str) -> list[str]:
		prefix = f"--certificatesresolvers.{name}.acme"
		flags = [
			f"{prefix}.email={self.email}",
			f"{prefix}.caserver={self.directory_url}",
			# one file for both resolvers: Traefik keeps each resolver's account and certificates apart
			f"{prefix}.storage={ACME_STORAGE}",
			f"{prefix}.keytype={self.key_type}",
			f"{prefix}.certificatesduration={self.certificates_duration}",
		]
		if self.ca_bundle:
			flags.append(f"{prefix}.cacertificates={ACME_CA_BUNDLE}")
		if self.server_name:
			flags.append(f"{prefix}.caservername={self.server_name}")
		return flags

	@property
	def dns_name(self) -> str:
		"""The DNS-01 resolver's name (wildcards of root domains)."""
		return f"{self.name}-dns"

	@property
	def content_digest(self) -> str:
		"""Changes when the CA bundle written beside ``acme.json`` changes (the container is remade)."""
		return hashlib.sha256(self.ca_bundle.encode()).hexdigest() if self.ca_bundle else ""


# --- DNS-01: wildcards of root domains ----------------------------------------------------------------

DNS_CREDENTIALS_DIRECTORY = f"{ACME_DIRECTORY}/dns"  # in the ACME volume, never in the dynamic one
WILDCARD_FILE_PREFIX = "acme_wildcard_"
# lego's provider codes: lowercase words, digits, '-' and '.' (cloudflare, route53, acme-dns, exec, ...)
PROVIDER = re.compile(r"^[a-z0-9][a-z0-9.-]{0,39}$")
VARIABLE = re.compile(r"^[A-Z0-9_]+$")
# needs a person at a terminal to publish the record: never answers on a server
INTERACTIVE_PROVIDERS = ("manual",)
MAX_DELAY = 3600

FIELD_PROVIDER = "acme_dns_provider"
FIELD_CREDENTIALS = "acme_dns_credentials"
FIELD_RESOLVERS = "acme_dns_resolvers"
FIELD_DELAY = "acme_dns_delay"


@dataclass(frozen=True)
class DnsChallenge:
	"""How the DNS-01 resolver publishes the challenge's TXT record: a provider of Traefik's ACME client
	(lego, https://go-acme.github.io/lego/dns/) and that provider's variables (``CF_DNS_API_TOKEN``, ...).
	``resolvers`` (``host:port``) are asked whether the record has propagated, after ``delay`` seconds;
	``check_propagation=False`` skips that check (a DNS server the proxy cannot query)."""

	provider: str
	credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
	resolvers: tuple[str, ...] = ()
	delay: int = 0
	check_propagation: bool = True

	def __post_init__(self):
		lego = "see https://go-acme.github.io/lego/dns/ for the providers and their variables"
		if not isinstance(self.provider, str) or not PROVIDER.match(self.provider):
			raise ValidationError(
				FIELD_PROVIDER,
				self.provider,
				"a DNS provider's code is lowercase letters, digits, '-' or '.' (e.g. cloudflare, route53)",
				f"enter the provider's code as lego names it; {lego}",
			)
		if self.provider in INTERACTIVE_PROVIDERS:
			raise ValidationError(
				FIELD_PROVIDER,
				self.provider,
				"this provider waits for a person to publish the record by hand",
				f"choose your DNS host's provider; {lego}",
			)
		for variable, value in self.credentials.items():
			if not isinstance(variable, str) or not VARIABLE.match(variable) or variable.endswith("_FILE"):
				raise ValidationError(
					f"{FIELD_CREDENTIALS}.variable",
					variable,
					"a variable is uppercase letters, digits and '_' as the provider's documentation names "
					"it, without the _FILE suffix (added here)",
					f"e.g. CF_DNS_API_TOKEN for cloudflare; {lego}",
				)
			if not isinstance(value, str) or not value.strip() or "\0" in value:
				raise ValidationError(
					f"{FIELD_CREDENTIALS}.{variable}",
					"",
					"the value is empty or holds a NUL character",
					"enter the value the DNS provider gave you, or remove the variable",
					show_value=False,
				)
		for resolver in self.resolvers:
			host, _, port = str(resolver).rpartition(":")
			if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() for c in host):
				raise ValidationError(
					FIELD_RESOLVERS,
					resolver,
					"a resolver is host:port",
					"list DNS servers that see your zone, e.g. 1.1.1.1:53, 8.8.8.8:53",
				)
		if (
			isinstance(self.delay, bool)
			or not isinstance(self.delay, int)
			or not 0 <= self.delay <= MAX_DELAY
		):
			raise ValidationError(
				FIELD_DELAY,
				self.delay,
				f"seconds between 0 and {MAX_DELAY}",
				"enter how long your DNS host takes to publish a record (0: check at once)",
			)

	def arguments(self, resolver: str) -> tuple[str, ...]:
		prefix = f"--certificatesresolvers.{resolver}.acme.dnschallenge"
		flags = [f"{prefix}=true", f"{prefix}.provider={self.provider}"]
		if self.resolvers:
			flags.append(f"{prefix}.resolvers={','.join(self.resolvers)}")
		if self.delay:
			flags.append(f"{prefix}.propagation.delaybeforechecks={self.delay}s")
		if not self.check_propagation:
			flags.append(f"{prefix}.propagation.disablechecks=true")
		return tuple(flags)

	def environment(self) -> dict[str, str]:
		"""What the Traefik container's environment holds: only where each value is (lego reads
		``<VAR>_FILE`` when ``<VAR>`` is unset)."""
		return {f"{variable}_FILE": credential_path(variable) for variable in sorted(self.credentials)}

	def files(self) -> dict[str, bytes]:
		"""Path → content of the credential files (written mode 0400, owned by root, Traefik's user)."""
		return {credential_path(variable): value.encode() for variable, value in self.credentials.items()}


def credential_path(variable: str) -> str:
	return f"{DNS_CREDENTIALS_DIRECTORY}/{variable}"


def validate_dns_settings(
	resolver: AcmeResolver | None, dns: DnsChallenge | None, wildcard_domains: tuple[str, ...]
) -> None:
	"""DNS-01 uses the ACME resolver's server and account; a wildcard needs DNS-01."""
	if dns and not resolver:
		raise ValidationError(
			FIELD_PROVIDER,
			dns.provider,
			"DNS-01 needs the ACME server and account of the proxy's ACME resolver, which is not set",
			f"set {CONFIG_EMAIL} (and {CONFIG_DIRECTORY} for another ACME server than Let's Encrypt)",
		)
	if wildcard_domains and not dns:
		raise ValidationError(
			FIELD_PROVIDER,
			"",
			f"a wildcard certificate ({', '.join(wildcard_domains)}) can only be obtained by DNS-01",
			"choose the root domain's DNS provider",
		)
	for domain in wildcard_domains:
		validate_fqdn(domain, "domain")


def wildcard_file_name(domain: str) -> str:
	return f"{WILDCARD_FILE_PREFIX}{domain.replace('.', '_')}.yml"


def wildcard_document(domain: str, resolver: str) -> dict:
	"""A router that asks ``resolver`` for ``*.<domain>`` and ``<domain>`` in one certificate, which
	Traefik then serves by SNI for every name under the domain without a certificate of its own.
	Traefik obtains what routers' ``tls.domains`` list whether or not a request ever matches the rule,
	so the router routes only a path nobody uses, to Traefik's built-in no-op service."""
	return {
		"http": {
			"routers": {
				f"{domain.replace('.', '_')}-wildcard": {
					"entryPoints": ["websecure"],
					"rule": f"Host(`{domain}`) && PathPrefix(`/.well-known/press-selfhosted-wildcard/`)",
					"priority": 1,
					"service": "noop@internal",
					"tls": {"certResolver": resolver, "domains": [{"main": f"*.{domain}", "sans": [domain]}]},
				}
			}
		}
	}


def wildcard_files(dynamic_directory: str, domains: tuple[str, ...], resolver: str) -> dict[str, bytes]:
	"""Path → content of the documents asking for each root domain's wildcard."""
	return {
		f"{dynamic_directory}/{wildcard_file_name(domain)}": (
			f"# press-selfhosted: the wildcard of {domain} by DNS-01\n"
			+ json.dumps(wildcard_document(domain, resolver), sort_keys=True)
			+ "\n"
		).encode()
		for domain in domains
	}


# --- what Traefik obtained ---------------------------------------------------------------------------

# Traefik renews a certificate when a third of its lifetime is left (30 of 90 days; for short-lived ones
# it checks every minute): one with under two thirds of that window left (20 of 90 days) is not being
# renewed. A site gets ISSUE_GRACE after its route is written before a missing certificate counts.
RENEWAL_OVERDUE = 2 / 9
ISSUE_GRACE = datetime.timedelta(minutes=30)
DEFAULT_LIFETIME = datetime.timedelta(days=90)  # Let's Encrypt's, when the issue date is not known


def renewal_overdue(issued: datetime.datetime, expires: datetime.datetime, now: datetime.datetime) -> bool:
	return expires - now < (expires - issued) * RENEWAL_OVERDUE


@dataclass(frozen=True)
class HeldCertificate:
	"""One certificate Traefik holds in ``acme.json``: the resolver that obtained it, the names asked for,
	the chain as Traefik serves it (PEM, leaf first) and, decoded only when asked, its private key."""

	resolver: str
	main: str
	sans: tuple[str, ...]
	chain: str
	encoded_key: str = field(repr=False)  # base64 of the PEM key, as acme.json keeps it

	@property
	def names(self) -> tuple[str, ...]:
		return (self.main, *self.sans)

	@property
	def leaf(self) -> x509.Certificate:
		return x509.load_pem_x509_certificate(self.chain.encode())

	@property
	def certificate(self) -> str:
		"""The leaf alone (PEM)."""
		return self.leaf.public_bytes(serialization.Encoding.PEM).decode()

	@property
	def intermediates(self) -> str:
		"""The rest of the chain (PEM)."""
		return "".join(
			c.public_bytes(serialization.Encoding.PEM).decode()
			for c in x509.load_pem_x509_certificates(self.chain.encode())[1:]
		)

	@property
	def private_key(self) -> str:
		return base64.b64decode(self.encoded_key).decode()

	@property
	def issuer(self) -> str:
		return issuer_name(self.leaf)

	@property
	def rsa_bits(self) -> int | None:
		"""The key's size when it is RSA (Traefik's default keys are EC)."""
		key = self.leaf.public_key()
		return key.key_size if isinstance(key, rsa.RSAPublicKey) else None


def held_certificates(acme_json: bytes, resolvers: tuple[str, ...]) -> list[HeldCertificate]:
	"""The certificates of ``resolvers`` in Traefik's ``acme.json`` (read in memory: the file also holds
	the ACME account key, which nothing here reads)."""
	stored = _parsed(acme_json)
	found = []
	for resolver in resolvers:
		for entry in (stored.get(resolver) or {}).get("Certificates") or []:
			domain = entry.get("domain") or {}
			found.append(
				HeldCertificate(
					resolver=resolver,
					main=domain.get("main") or "",
					sans=tuple(domain.get("sans") or ()),
					chain=base64.b64decode(entry.get("certificate") or "").decode(),
					encoded_key=entry.get("key") or "",
				)
			)
	return found


def without_other_servers_accounts(
	acme_json: bytes, directory_url: str, resolvers: tuple[str, ...]
) -> bytes | None:
	"""``acme.json`` without the ACME account of each of ``resolvers`` that was registered with another
	ACME server than ``directory_url`` (None: nothing to drop).

	Traefik keeps using a resolver's stored account whatever server the resolver now names (only a new
	e-mail makes it register again), and the new server refuses that account's key ID ("Key ID (kid) in
	JWS header missing expected URL prefix"): after moving from Let's Encrypt's staging server to its
	production one, no certificate would ever be obtained. The certificates stay: Traefik serves them
	until it renews them with the new server."""
	if not acme_json:
		return None
	stored = _parsed(acme_json)
	server = _origin(directory_url)
	dropped = False
	for resolver in resolvers:
		account = (stored.get(resolver) or {}).get("Account")
		registered = ((account or {}).get("Registration") or {}).get("uri") or ""
		if account and _origin(registered) != server:
			stored[resolver]["Account"] = None
			dropped = True
	return json.dumps(stored, indent=2).encode() if dropped else None


def _parsed(acme_json: bytes) -> dict:
	try:
		return json.loads(acme_json or b"{}")
	except ValueError as error:
		raise ValidationError(
			"acme.json", "", f"not JSON ({error})", "check the Traefik container's log"
		) from None


def _origin(url: str) -> tuple[str, str, int]:
	parts = urlsplit(url)
	return (
		parts.scheme,
		(parts.hostname or "").lower(),
		parts.port or (443 if parts.scheme == "https" else 80),
	)


def stored_certificates(
	acme_json: bytes, resolver: str
) -> dict[str, tuple[datetime.datetime, datetime.datetime]]:
	"""Every name a certificate of ``resolver`` in Traefik's ``acme.json`` covers → when its latest
	certificate was issued and when it expires (UTC)."""
	found: dict[str, tuple[datetime.datetime, datetime.datetime]] = {}
	for held in held_certificates(acme_json, (resolver,)):
		validity = (not_before(held.leaf), not_after(held.leaf))
		for name in held.names:
			if name:
				found[name] = max(found.get(name, validity), validity, key=lambda pair: pair[1])
	return found


def issuer_name(certificate: x509.Certificate) -> str:
	"""Who signed it: the issuer's common name (its whole name when it has none)."""
	names = certificate.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
	return str(names[0].value) if names else certificate.issuer.rfc4514_string()


def not_after(certificate: x509.Certificate) -> datetime.datetime:
	"""When the certificate expires, timezone-aware."""
	# the aware property came with cryptography 42; Press's pyOpenSSL 23.2 keeps its bench below 42
	aware = getattr(certificate, "not_valid_after_utc", None)
	return aware or certificate.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def not_before(certificate: x509.Certificate) -> datetime.datetime:
	"""When the certificate starts to hold, timezone-aware (see :func:`not_after`)."""
	aware = getattr(certificate, "not_valid_before_utc", None)
	return aware or certificate.not_valid_before.replace(tzinfo=datetime.timezone.utc)


@dataclass(frozen=True)
class SiteCertificate:
	"""A name the proxy asks its ACME resolver to certify, the site's own or its custom ``domain``:
	since when it is routed, and until when its certificate holds (None: Traefik has none for it)."""

	site: str
	routed_since: datetime.datetime
	not_after: datetime.datetime | None
	domain: str | None = None  # a custom domain of the site, certified by the resolver too
	not_before: datetime.datetime | None = None  # when the certificate held was issued

	@property
	def name(self) -> str:
		"""The name certified."""
		return self.domain or self.site

	def problem(self, now: datetime.datetime) -> str | None:
		"""What an operator must look at, or None while all is well."""
		if self.not_after is None:
			if now - self.routed_since < ISSUE_GRACE:
				return None
			return (
				f"{self.name}: no certificate since its route was written at {self.routed_since:%Y-%m-%d %H:%M} UTC. "
				f"Fix: the ACME server must reach http://{self.name}/.well-known/acme-challenge/ on this proxy "
				"(DNS pointing here, port 80 open); Traefik's log (docker logs) says why it failed."
			)
		if renewal_overdue(self.not_before or self.not_after - DEFAULT_LIFETIME, self.not_after, now):
			return (
				f"{self.name}: certificate expires {self.not_after:%Y-%m-%d %H:%M} UTC and has not been renewed. "
				"Fix: see Traefik's log (docker logs) for the renewal's error."
			)
		return None


@dataclass(frozen=True)
class DefaultCertificate:
	"""The certificate (PEM chain, leaf first) Traefik serves when no other one matches the name."""

	certificate: str
	private_key: str = field(repr=False)

	def __post_init__(self):
		try:
			leaf = x509.load_pem_x509_certificates(self.certificate.encode())[0]
		except ValueError:
			raise ValidationError(
				CONFIG_CERTIFICATE,
				"(PEM text)",
				"no readable PEM certificate",
				"point it at the certificate chain file (leaf first, then intermediates)",
				show_value=False,
			) from None
		try:
			key = serialization.load_pem_private_key(self.private_key.encode(), password=None)
		except (ValueError, TypeError):
			raise ValidationError(
				CONFIG_CERTIFICATE_KEY,
				"",
				"no readable unencrypted PEM private key",
				"point it at the certificate's private key file (without a passphrase)",
				show_value=False,
			) from None
		if key.public_key().public_bytes(*_SPKI) != leaf.public_key().public_bytes(*_SPKI):
			raise ValidationError(
				CONFIG_CERTIFICATE_KEY,
				"",
				"the private key does not belong to the certificate",
				f"give the key the certificate in {CONFIG_CERTIFICATE} was issued for",
				show_value=False,
			)


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def default_certificate_files(dynamic_directory: str, certificate: DefaultCertificate) -> dict:
	"""Path → (content, mode) of the default certificate and the dynamic file naming it."""
	directory = f"{dynamic_directory}/{DEFAULT_CERTIFICATE_DIRECTORY}"
	document = {
		"tls": {
			"stores": {
				"default": {
					"defaultCertificate": {
						"certFile": f"{directory}/fullchain.pem",
						"keyFile": f"{directory}/privkey.pem",
					}
				}
			}
		}
	}
	return {
		f"{directory}/fullchain.pem": (certificate.certificate.encode(), 0o644),
		f"{directory}/privkey.pem": (certificate.private_key.encode(), 0o600),
		f"{dynamic_directory}/{DEFAULT_CERTIFICATE_FILE}": (json.dumps(document, indent=1).encode(), 0o644),
	}


def _read(conf: Mapping, key: str) -> str:
	"""A PEM value from the site config: the PEM text itself, or the path of a file holding it."""
	value = (conf.get(key) or "").strip()
	if not value or "-----BEGIN " in value:
		return value
	try:
		return Path(value).read_text()
	except OSError as failure:
		raise ValidationError(
			key,
			value,
			f"the file cannot be read ({failure.strerror})",
			"give the path of a PEM file readable by the bench user, or the PEM text itself",
		) from None


def _hours(value: object) -> object:
	"""The site config's hours as a number when they read as one (the resolver refuses anything else)."""
	if value in (None, ""):
		return AcmeResolver.certificates_duration
	if isinstance(value, str) and value.strip().isdigit():
		return int(value)
	return value


def from_site_config(conf: Mapping) -> tuple[AcmeResolver | None, DefaultCertificate | None]:
	"""The proxy's TLS settings from the Press site's config: ACME when an e-mail is set, a default
	certificate when a certificate is set; both together is allowed (the default certificate then
	answers names ACME has not (yet) issued for)."""
	resolver = None
	if conf.get(CONFIG_EMAIL) or conf.get(CONFIG_DIRECTORY):
		resolver = AcmeResolver(
			email=conf.get(CONFIG_EMAIL),
			directory_url=conf.get(CONFIG_DIRECTORY) or LETS_ENCRYPT,
			ca_bundle=_read(conf, CONFIG_CA_BUNDLE),
			server_name=conf.get(CONFIG_SERVER_NAME) or "",
			certificates_duration=_hours(conf.get(CONFIG_CERTIFICATES_DURATION)),
		)
	certificate = None
	if conf.get(CONFIG_CERTIFICATE) or conf.get(CONFIG_CERTIFICATE_KEY):
		certificate = DefaultCertificate(_read(conf, CONFIG_CERTIFICATE), _read(conf, CONFIG_CERTIFICATE_KEY))
	return resolver, certificate


def certificate_rows(found: list[SiteCertificate], now: datetime.datetime) -> list[dict]:
	"""The report as the API answers it: one row per name certified, the problem (or None) in words."""
	return [
		{
			"site": certificate.site,
			"domain": certificate.domain,
			"routed_since": certificate.routed_since.isoformat(),
			"not_after": certificate.not_after.isoformat() if certificate.not_after else None,
			"problem": certificate.problem(now),
		}
		for certificate in sorted(found, key=lambda item: (item.site, item.domain or ""))
	]


def problems_text(proxy_server: str, rows: list[dict]) -> str | None:
	"""The Error Log's text, or None when every site is fine."""
	problems = [row["problem"] for row in rows if row["problem"]]
	if not problems:
		return None
	header = f"{len(problems)} of {len(rows)} name(s) certified by ACME on proxy server {proxy_server}:"
	return "\n".join([header, *problems])
