"""TLS Certificate records of what a container proxy's Traefik holds by ACME (engine.policies.acme_records): pure,
with certificates made by the platform CA's engine and an acme.json as Traefik writes it."""

from __future__ import annotations

import base64
import datetime
import json

from cryptography import x509

from press_selfhosted.engine.clients import acme, platform_ca
from press_selfhosted.engine.clients.acme import AcmeResolver, HeldCertificate, SiteCertificate
from press_selfhosted.engine.policies import acme_records

NOW = datetime.datetime(2026, 11, 30, 9, 0, tzinfo=datetime.timezone.utc)
RESOLVER = AcmeResolver("ops@example.com")
HOUR = datetime.timedelta(hours=1)
CA = platform_ca.Authority.create("records test CA", now=NOW - datetime.timedelta(days=400))


def held(names: list[str], resolver: str, issued: datetime.datetime, days: int = 90) -> HeldCertificate:
	made = CA.issue(names, now=issued, days=days)
	return HeldCertificate(
		resolver,
		names[0],
		tuple(names[1:]),
		made.full_chain,
		base64.b64encode(made.private_key.encode()).decode(),
	)


def site(name: str, routed_hours_ago: float = 48) -> SiteCertificate:
	return SiteCertificate(name, NOW - datetime.timedelta(hours=routed_hours_ago), None)


def test_a_held_certificate_reads_as_press_keeps_it():
	made = CA.issue(["a.example.com"], now=NOW)
	stored = {
		"acme": {
			"Account": {"PrivateKey": "bm90IHJlYWQ="},
			"Certificates": [
				{
					"domain": {"main": "a.example.com"},
					"certificate": base64.b64encode(made.full_chain.encode()).decode(),
					"key": base64.b64encode(made.private_key.encode()).decode(),
					"Store": "default",
				}
			],
		}
	}
	(found,) = acme.held_certificates(json.dumps(stored).encode(), ("acme", "acme-dns"))
	assert (found.resolver, found.names) == ("acme", ("a.example.com",))
	assert found.certificate == made.certificate and found.intermediates == made.chain
	assert found.private_key == made.private_key and made.private_key not in repr(found)
	assert found.issuer == "records test CA"
	assert found.leaf.serial_number == made.serial


def test_each_site_gets_its_latest_certificate_and_the_wildcard_the_dns_resolvers():
	old = held(["a.example.com"], "acme", NOW - datetime.timedelta(days=70))
	new = held(["a.example.com"], "acme", NOW - datetime.timedelta(days=5))
	wildcard = held(["*.root.test", "root.test"], RESOLVER.dns_name, NOW - datetime.timedelta(days=1))
	stray = held(["*.root.test"], "acme", NOW)  # another resolver's: not the wildcard's record
	found = acme_records.records(
		[site("a.example.com")], {"root.test": NOW - HOUR}, [old, new, wildcard, stray], RESOLVER, NOW
	)
	assert [(r.name, r.status, r.held) for r in found] == [
		("*.root.test", acme_records.ACTIVE, wildcard),
		("a.example.com", acme_records.ACTIVE, new),
	]
	assert found[0].wildcard and found[0].domain == "root.test" and found[0].error is None


def test_pending_then_failure_with_the_reason_then_expired():
	pending, failed = acme_records.records(
		[site("new.example.com", routed_hours_ago=0.1), site("old.example.com")], {}, [], RESOLVER, NOW
	)
	assert (pending.status, pending.error) == (acme_records.PENDING, None)
	assert failed.status == acme_records.FAILURE and "no certificate" in failed.error
	lapsed = held(["gone.example.com"], "acme", NOW - datetime.timedelta(days=91))
	(expired,) = acme_records.records([site("gone.example.com")], {}, [lapsed], RESOLVER, NOW)
	assert expired.status == acme_records.EXPIRED and expired.held == lapsed
	assert "expired" in expired.error and "Fix:" in expired.error
	assert acme.not_after(x509.load_pem_x509_certificate(lapsed.chain.encode())) < NOW


def test_a_custom_domain_certified_by_acme_gets_a_record_of_its_own():
	"""The site's certificate never stands for its custom domain's, nor the reverse."""
	own = held(["a.example.com"], "acme", NOW - datetime.timedelta(days=3))
	domain = held(["www.customer.test"], "acme", NOW - datetime.timedelta(days=2))
	custom = SiteCertificate("a.example.com", NOW - datetime.timedelta(minutes=5), None, "www.customer.test")
	found = acme_records.records([site("a.example.com"), custom], {}, [own, domain], RESOLVER, NOW)
	assert [(r.name, r.domain, r.wildcard, r.status, r.held) for r in found] == [
		("a.example.com", "a.example.com", False, acme_records.ACTIVE, own),
		("www.customer.test", "www.customer.test", False, acme_records.ACTIVE, domain),
	]
	(waiting,) = acme_records.records([custom], {}, [own], RESOLVER, NOW)
	assert (waiting.name, waiting.status, waiting.held) == ("www.customer.test", acme_records.PENDING, None)


def test_a_wildcard_without_a_certificate_is_pending_then_a_failure_saying_why():
	asked = {"new.test": NOW - datetime.timedelta(minutes=5), "old.test": NOW - HOUR}
	pending, failed = acme_records.records([], asked, [], RESOLVER, NOW)
	assert (pending.name, pending.status, pending.error) == ("*.new.test", acme_records.PENDING, None)
	assert (failed.name, failed.status) == ("*.old.test", acme_records.FAILURE)
	assert "no certificate since" in failed.error and "ACME DNS Provider" in failed.error


def test_a_site_served_with_its_root_domains_wildcard_has_no_record_of_its_own():
	"""Traefik obtains no certificate for a name a wildcard it holds covers: no Failure for it."""
	wildcard = held(["*.root.test", "root.test"], RESOLVER.dns_name, NOW - datetime.timedelta(days=1))
	own = held(["early.root.test"], "acme", NOW - datetime.timedelta(days=2))  # obtained before the wildcard
	found = acme_records.records(
		[site("late.root.test"), site("early.root.test"), site("other.example.com")],
		{"root.test": NOW - HOUR},
		[wildcard, own],
		RESOLVER,
		NOW,
	)
	assert [(r.name, r.status) for r in found] == [
		("*.root.test", acme_records.ACTIVE),
		("early.root.test", acme_records.ACTIVE),
		("other.example.com", acme_records.FAILURE),
	]
