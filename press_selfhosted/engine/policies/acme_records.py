"""What the TLS Certificate records of a container proxy's ACME certificates say, from what its Traefik
holds: one record per site name and per custom domain the proxy certifies by HTTP-01, and one
``*.<root domain>`` per wildcard obtained by DNS-01. Pure: the proxy's report and ``acme.json``'s
certificates in, records out.

A record follows its certificate: Pending while Traefik has none and the site's grace period runs,
Failure (with the reason) after it, Active with the served chain, Expired once it lapsed. A name the proxy
no longer certifies has no record (the caller removes it).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from press_selfhosted.engine.clients.acme import (
	ISSUE_GRACE,
	AcmeResolver,
	HeldCertificate,
	SiteCertificate,
	not_after,
)

PENDING = "Pending"
ACTIVE = "Active"
EXPIRED = "Expired"
FAILURE = "Failure"


@dataclass(frozen=True)
class CertificateRecord:
	domain: str  # the site name, a custom domain, or the root domain of a wildcard
	wildcard: bool
	status: str
	held: HeldCertificate | None
	error: str | None = None

	@property
	def name(self) -> str:
		"""The record's name, as Press names TLS Certificates."""
		return f"*.{self.domain}" if self.wildcard else self.domain


def records(
	sites: Iterable[SiteCertificate],
	wildcards: Mapping[str, datetime.datetime],
	held: Iterable[HeldCertificate],
	resolver: AcmeResolver,
	now: datetime.datetime,
) -> list[CertificateRecord]:
	"""The records of one proxy, sorted by name. ``wildcards``: each root domain whose wildcard the proxy
	asks its DNS-01 resolver for → since when."""
	held = list(held)
	wildcards_held = {h.main for h in held if h.resolver == resolver.dns_name}
	found = []
	for site in sites:
		best = _latest(h for h in held if h.resolver == resolver.name and site.name in h.names)
		if best is None and f"*.{site.name.partition('.')[2]}" in wildcards_held:
			# Traefik asks for no certificate of a name its root domain's wildcard covers: the site is served
			# with the wildcard, whose own record says how it stands
			continue
		found.append(_record(site.name, False, best, site.problem(now), now))
	for domain, since in wildcards.items():
		best = _latest(h for h in held if h.resolver == resolver.dns_name and h.main == f"*.{domain}")
		problem = None
		if best is None and now - since >= ISSUE_GRACE:
			problem = (
				f"*.{domain}: no certificate since the proxy asked for it at {since:%Y-%m-%d %H:%M} UTC. Fix: check "
				"the Root Domain's ACME DNS Provider and its credentials; Traefik's log (docker logs) says what "
				"the DNS provider or the ACME server answered."
			)
		found.append(_record(domain, True, best, problem, now))
	return sorted(found, key=lambda record: record.name)


def _latest(candidates: Iterable[HeldCertificate]) -> HeldCertificate | None:
	return max(candidates, key=lambda h: not_after(h.leaf), default=None)


def _record(
	domain: str, wildcard: bool, held: HeldCertificate | None, problem: str | None, now: datetime.datetime
) -> CertificateRecord:
	if held is None:
		return CertificateRecord(domain, wildcard, FAILURE if problem else PENDING, None, problem)
	expiry = not_after(held.leaf)
	if expiry <= now:
		return CertificateRecord(
			domain,
			wildcard,
			EXPIRED,
			held,
			f"{held.main}: the certificate expired {expiry:%Y-%m-%d %H:%M} UTC and Traefik did not renew it. "
			"Fix: see Traefik's log (docker logs) for the renewal's error.",
		)
	return CertificateRecord(domain, wildcard, ACTIVE, held, problem)
