"""Frappe glue for the certificates the platform's own CA issues (LAN and air-gapped installs).

A root domain's wildcard (and its bare name) is issued by the CA (``engine.clients.platform_ca``) and kept as
Press's own TLS Certificate record, provider "Other": Press validates it and records its dates. It is
sent to every container Proxy Server of the domain's cluster as Press sends a root domain's wildcard
("Add Wildcard Hosts to Proxy", an ordinary Agent Job), and Traefik serves it by SNI for every site
under the domain. ``renew_platform_certificates`` (daily) issues again what lapses within 30 days.

Custom domains of sites on container servers follow their root domain: where the platform CA certifies
the root domain, Press's TLS Certificate for a custom domain is issued by the CA as it is inserted
(provider "Other", so Press's certbot, which needs the Internet, never runs) and Press's own Site Domain
flow sends it with "Add Host to Proxy" once the Site Domain holds it. Elsewhere, where the site's proxy
has an ACME resolver, the record is left Pending without a certificate (``certificates.acme_custom_domain``)
and "Add Host to Proxy" is sent at once without one: Traefik obtains it by HTTP-01 and the hourly watch
fills the record.
"""

from __future__ import annotations

import frappe
from cryptography import x509
from press.agent import Agent

from press_selfhosted.engine.clients import acme, platform_ca
from press_selfhosted.glue import certificates, cluster
from press_selfhosted.press_selfhosted.doctype.platform_certificate_authority.platform_certificate_authority import (
	authority,
)
from press_selfhosted.record_rules.doc_events import site_on_container_server


def certify_root_domain(domain: str, renew: bool = False) -> dict:
	"""The root domain's certificate from the platform CA, issued when missing, due for renewal or
	``renew``; then sent to the domain's container proxies. A certificate of the name that the CA did not
	issue is refused, never replaced. What was done."""
	if not frappe.db.exists("Root Domain", domain):
		frappe.throw(
			f"No Root Domain {domain}: the certificate covers the sites under a root domain of Press."
		)
	name = f"*.{domain}"
	ca = authority()
	current = frappe.db.get_value("TLS Certificate", name, "certificate")
	if frappe.db.exists("TLS Certificate", name) and not ca.issued(current or ""):
		# the operator's own certificate (Let's Encrypt through Press, or uploaded): never replaced here
		frappe.throw(
			f"TLS Certificate {name} was not issued by the platform CA. Fix: keep it, or delete it first "
			"if the platform CA is to certify this domain."
		)
	if current and not platform_ca.renewal_due(current) and not renew:
		return {"certificate": name, "issued": False, "jobs": []}
	values = {"domain": domain, "wildcard": 1, "team": cluster.operator_team()}
	values.update(issued_values(ca, platform_ca.root_domain_names(domain)))
	if frappe.db.exists("TLS Certificate", name):
		doc = frappe.get_doc("TLS Certificate", name)
		doc.update(values)
		doc.save(ignore_permissions=True)
	else:
		doc = frappe.get_doc({"doctype": "TLS Certificate", **values}).insert(ignore_permissions=True)
	return {"certificate": doc.name, "issued": True, "jobs": deliver(doc)}


def issued_values(ca: platform_ca.Authority, names: list[str]) -> dict:
	"""A TLS Certificate's fields for a certificate the CA issues now for ``names``."""
	issued = ca.issue(names)
	return {
		"provider": "Other",
		"rsa_key_size": str(platform_ca.LEAF_KEY_BITS),
		"certificate": issued.certificate,
		"intermediate_chain": issued.chain,
		# Press fills it only when empty: a renewal would keep (and check the new key against) the old chain
		"full_chain": issued.full_chain,
		"private_key": issued.private_key,
		"certificate_issuer": acme.issuer_name(x509.load_pem_x509_certificate(issued.certificate.encode())),
	}


def _platform_authority_of(root_domain: str | None) -> platform_ca.Authority | None:
	"""The platform CA when it certifies ``root_domain`` (it issued the domain's wildcard); else None.
	Never makes the CA."""
	if not root_domain or not frappe.db.get_single_value("Platform Certificate Authority", "certificate"):
		return None
	ca = authority()
	wildcard = frappe.db.get_value("TLS Certificate", f"*.{root_domain}", "certificate")
	return ca if wildcard and ca.issued(wildcard) else None


def certify_custom_domain(doc, method=None) -> None:
	"""TLS Certificate before insert: the certificate Press's Site Domain asks for, for a custom domain
	of a container site, is issued by the platform CA at once where it certifies the site's root domain,
	else left to the ACME resolver of the site's proxy where it has one (Press's certbot otherwise)."""
	if doc.wildcard or doc.certificate or doc.provider != "Let's Encrypt":
		return
	site = frappe.db.get_value("Site Domain", {"domain": doc.domain}, "site")
	if not site_on_container_server(site):
		return
	ca = _platform_authority_of(frappe.db.get_value("Site", site, "domain"))
	if ca:
		doc.update(issued_values(ca, [doc.domain]))
		doc.status = "Active"
	elif proxy := certificates.acme_proxy_of(site):
		certificates.acme_custom_domain(doc, proxy)


def send_custom_domain_certificate(doc, method=None) -> None:
	"""Site Domain on update: once it holds its TLS Certificate, ``Add Host to Proxy`` is sent at once
	(what Press does when its certbot succeeds; for provider "Other" Press waits for nothing) when the
	certificate is the platform CA's, or is left to the proxy's ACME resolver (sent without one: the proxy
	routes the domain and Traefik obtains its certificate)."""
	if doc.status != "Pending" or not doc.tls_certificate or not doc.has_value_changed("tls_certificate"):
		return
	certificate = frappe.db.get_value(
		"TLS Certificate",
		doc.tls_certificate,
		["provider", "status", "certificate", "acme_proxy_server"],
		as_dict=True,
	)
	if not certificate or certificate.provider != "Other":
		return
	by_acme = (
		certificate.status == "Pending" and certificate.acme_proxy_server and not certificate.certificate
	)
	if by_acme or (
		certificate.status == "Active" and _issued_by_platform_ca(doc.site, certificate.certificate)
	):
		doc.create_agent_request()


def _issued_by_platform_ca(site: str, certificate: str | None) -> bool:
	ca = _platform_authority_of(frappe.db.get_value("Site", site, "domain"))
	return bool(ca and ca.issued(certificate or ""))


def deliver(certificate) -> list[str]:
	"""The certificate to each Active container Proxy Server of its domain's cluster, by Press's own
	"Add Wildcard Hosts to Proxy" (called directly: Press's Proxy Server skips its own domain, whose
	certificate its Ansible setup would install); the Agent Jobs."""
	cluster_name = frappe.db.get_value("Root Domain", certificate.domain, "default_cluster")
	proxies = frappe.get_all(
		"Proxy Server",
		filters={
			"cluster": cluster_name,
			"status": "Active",
			"container_prefix": ("is", "set"),
			"docker_socket": ("is", "set"),
		},
		pluck="name",
	)
	wildcards = [
		{
			"domain": certificate.domain,
			"certificate": {
				"privkey.pem": certificate.get_password("private_key"),
				"fullchain.pem": certificate.full_chain,
				"chain.pem": certificate.intermediate_chain,
			},
			"code_server": False,
		}
	]
	return [
		Agent(proxy, server_type="Proxy Server").setup_wildcard_hosts(wildcards).name for proxy in proxies
	]


def renew_platform_certificates() -> None:
	"""Scheduler (daily): the platform CA's certificates that lapse within 30 days, issued again and sent
	(root domains' wildcards to their proxies, custom domains' by Add Host to Proxy)."""
	ca_certificate = frappe.db.get_single_value("Platform Certificate Authority", "certificate")
	if not ca_certificate:
		return
	ca = authority()
	for row in frappe.get_all(
		"TLS Certificate", filters={"provider": "Other"}, fields=["name", "domain", "wildcard", "certificate"]
	):
		if not (ca.issued(row.certificate or "") and platform_ca.renewal_due(row.certificate)):
			continue
		if row.wildcard:
			certify_root_domain(row.domain, renew=True)
		else:
			renew_custom_domain(ca, row.name)
		frappe.db.commit()


def renew_custom_domain(ca: platform_ca.Authority, certificate: str) -> str | None:
	"""A custom domain's platform-CA certificate issued again, and sent to the proxy when its Site Domain
	is Active; the Agent Job."""
	doc = frappe.get_doc("TLS Certificate", certificate)
	doc.update(issued_values(ca, [doc.domain]))
	doc.save(ignore_permissions=True)
	name = frappe.db.get_value("Site Domain", {"tls_certificate": doc.name, "status": "Active"})
	if not name:
		return None
	site_domain = frappe.get_doc("Site Domain", name)
	return site_domain.agent.new_host(site_domain).name
