"""Whether a custom domain's DNS sends its visitors to the cluster's proxy.

Press checks a new Site Domain against fixed public resolvers (Cloudflare's and Google's), which a
LAN or air-gapped platform cannot reach and whose answers say nothing of names only the operator's
DNS knows. On container clusters the check asks the operator's resolvers instead: the domain is
accepted when its CNAME names the site (or the proxy server), or when every address it resolves to
is one of the proxy's (the addresses the site's own name resolves to, and the proxy server's IP).
A domain with one right and one wrong address is refused: half of its visitors would reach another
machine, and an ACME HTTP-01 challenge could be answered there.

dnspython 1.16 (Press's pin) and 2.x are both supported: only ``Resolver.query``/``resolve``,
``nameservers`` and ``port`` are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.resolver

from press_selfhosted.engine import validation
from press_selfhosted.engine.errors import DnsUnanswered, DomainNotPointingHere, ValidationError

NAMESERVERS_FIELD = "press_selfhosted_dns_nameservers"
TIMEOUT = 5.0


@dataclass(frozen=True)
class Nameserver:
	host: str
	port: int = 53


@dataclass(frozen=True)
class ProxyTarget:
	"""What a custom domain of ``site`` may point at."""

	site: str
	names: tuple[str, ...]  # CNAME targets accepted: the site's name, the proxy server's name
	addresses: tuple[str, ...] = ()  # the proxy server's own IPs, besides what the site's name resolves to


@dataclass(frozen=True)
class DomainDns:
	"""A domain found pointing here: ``kind`` is Press's Site Domain ``dns_type`` (CNAME or A)."""

	domain: str
	kind: str
	answer: str


def parse_nameservers(value: object, field: str = NAMESERVERS_FIELD) -> tuple[Nameserver, ...]:
	"""``"10.0.0.2, 127.0.0.1:8053"`` or a list of such; empty means the host's resolvers
	(/etc/resolv.conf). One port for all: dnspython 1.16 asks every nameserver on the same port."""
	items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
	servers = []
	for item in (str(entry).strip() for entry in items):
		if not item:
			continue
		host, _, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
		servers.append(
			Nameserver(
				validation.validate_ip(host, field),
				validation.validate_port(port, field) if port else 53,
			)
		)
	if len({server.port for server in servers}) > 1:
		raise ValidationError(
			field,
			value,
			"every nameserver must listen on the same port",
			"list nameservers on one port (53 unless your resolvers use another)",
		)
	return tuple(servers)


def _resolver(nameservers: tuple[Nameserver, ...], timeout: float) -> dns.resolver.Resolver:
	if not nameservers:
		resolver = dns.resolver.Resolver()
	else:
		resolver = dns.resolver.Resolver(configure=False)
		resolver.nameservers = [server.host for server in nameservers]
		resolver.port = nameservers[0].port
	resolver.timeout = resolver.lifetime = timeout
	return resolver


def _name(text: str) -> str:
	return text.rstrip(".").lower()


class _Lookup:
	"""Queries for one check; an unreachable resolver is an error, a missing record an empty answer."""

	def __init__(self, nameservers: tuple[Nameserver, ...], timeout: float):
		self.nameservers = nameservers
		self.resolver = _resolver(nameservers, timeout)
		self.ask = getattr(self.resolver, "resolve", None) or self.resolver.query

	def records(self, name: str, kind: str) -> list[str]:
		try:
			return [record.to_text() for record in self.ask(name, kind)]
		except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
			return []
		except dns.exception.DNSException as error:
			shown = ", ".join(f"{server.host}:{server.port}" for server in self.nameservers)
			raise DnsUnanswered(name, shown or "the host's resolvers (/etc/resolv.conf)", error) from error

	def addresses(self, name: str) -> set[str]:
		return set(self.records(name, "A")) | set(self.records(name, "AAAA"))


def check_domain(
	domain: str, target: ProxyTarget, nameservers: tuple[Nameserver, ...] = (), timeout: float = TIMEOUT
) -> DomainDns:
	"""The domain's record that sends it to the proxy, or :class:`DomainNotPointingHere` saying
	what it points at and which record to add."""
	domain = validation.validate_fqdn(domain, "domain")
	lookup = _Lookup(nameservers, timeout)
	accepted_names = {_name(name) for name in target.names}
	expected = set(target.addresses) | lookup.addresses(target.site)
	cnames = [_name(record) for record in lookup.records(domain, "CNAME")]
	found = lookup.addresses(domain)
	if cnames and cnames[0] in accepted_names:
		return DomainDns(domain, "CNAME", f"{domain} CNAME {cnames[0]}")
	if found and found <= expected:
		kind = "CNAME" if cnames else "A"
		via = f" (CNAME {cnames[0]})" if cnames else ""
		return DomainDns(domain, kind, f"{domain}{via} → {', '.join(sorted(found))}")
	raise DomainNotPointingHere(
		domain,
		site=target.site,
		cname=cnames[0] if cnames else None,
		found=tuple(sorted(found)),
		wrong=tuple(sorted(found - expected)),
		expected=tuple(sorted(expected)),
	)
