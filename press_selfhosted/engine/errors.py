"""Typed errors raised by the engine.

Every engine error carries a message written for the operator: what went wrong and what to change.
The Frappe layer shows ``str(error)`` as it is (``frappe.throw``), so a message never contains a
secret (keys, passwords, tokens).

Add new error families here as subclasses of :class:`EngineError`.
"""

from __future__ import annotations


class EngineError(Exception):
	"""Base of every error the engine raises on purpose; ``message`` is operator-facing."""

	def __init__(self, message: str):
		super().__init__(message)
		self.message = message

	def __str__(self) -> str:
		return self.message


class ValidationError(EngineError):
	"""A value was refused: names the field, the bad value, the rule it breaks and how to fix it.

	``show_value=False`` keeps the value out of the message (for keys and passwords).
	"""

	def __init__(self, field: str, value: object, rule: str, fix: str, *, show_value: bool = True):
		self.field = field
		self.value = value
		self.rule = rule
		self.fix = fix
		shown = repr(value) if show_value else "(hidden)"
		super().__init__(f"{field}: {shown} is not accepted: {rule}. Fix: {fix}")


# --- S3 / MinIO (engine.storage) -----------------------------------------------------------------


class StorageError(EngineError):
	"""The S3 endpoint could not be used."""


class StorageUnreachable(StorageError):
	"""No answer from the endpoint within the connect timeout (refused, no route, DNS, timeout)."""


class StorageAuthError(StorageError):
	"""The endpoint answered but refused the keys, or the keys lack a permission."""


class StorageBucketMissing(StorageError):
	"""The bucket does not exist on the endpoint."""


class StorageTLSError(StorageError):
	"""The TLS handshake or certificate verification failed."""


# --- Docker registry (engine.registry) -----------------------------------------------------------


class RegistryError(EngineError):
	"""The registry could not be used."""


class RegistryUnreachable(RegistryError):
	"""No answer from the registry within the timeout."""


class RegistryAuthError(RegistryError):
	"""The registry refused the credentials, or needs credentials that were not given."""


class RegistryTLSError(RegistryError):
	"""The TLS handshake or certificate verification failed."""


# --- DNS of custom domains (engine.domain_dns) ---------------------------------------------------


class DomainDnsError(EngineError):
	"""A custom domain's DNS could not be shown to send its visitors to the cluster's proxy."""


class DnsUnanswered(DomainDnsError):
	"""The resolvers gave no answer (timeout, refused, SERVFAIL): nothing is known of the domain."""

	def __init__(self, name: str, nameservers: str, cause: Exception):
		self.name = name
		super().__init__(
			f"DNS: no answer for {name} from {nameservers} ({type(cause).__name__}). Fix: check that these "
			"resolvers answer from the Press host, or list reachable ones in the site config key "
			'press_selfhosted_dns_nameservers (e.g. "10.0.0.2" or "10.0.0.2:5353").'
		)


class DomainNotPointingHere(DomainDnsError):
	"""The domain resolves elsewhere, partly elsewhere, or not at all."""

	def __init__(
		self,
		domain: str,
		*,
		site: str,
		cname: str | None,
		found: tuple[str, ...],
		wrong: tuple[str, ...],
		expected: tuple[str, ...],
	):
		self.domain = domain
		self.found = found
		self.wrong = wrong
		if not found and not cname:
			seen = "has no CNAME, A or AAAA record"
		elif wrong and len(wrong) < len(found):
			seen = f"resolves partly elsewhere: {', '.join(wrong)} is not this platform's proxy"
		else:
			via = f"is a CNAME of {cname} and " if cname else ""
			seen = f"{via}resolves to {', '.join(found) or 'nothing'}"
		where = f" or an A/AAAA record to {', '.join(expected)}" if expected else ""
		super().__init__(
			f"Domain {domain} {seen}. Fix: at your DNS provider, add a CNAME record {domain} → {site}{where}, "
			"remove any other A/AAAA/CNAME record of the name, and try again once it has propagated."
		)
