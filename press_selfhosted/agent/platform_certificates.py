"""Frappe glue for the certificates the platform's own CA issues (LAN and air-gapped installs).

A root domain's wildcard (and its bare name) is issued by the CA (``engine.platform_ca``) and kept as
Press's own TLS Certificate record, provider "Other": Press validates it and records its dates. It is
sent to every container Proxy Server of the domain's cluster as Press sends a root domain's wildcard
("Add Wildcard Hosts to Proxy", an ordinary Agent Job), and Traefik serves it by SNI for every site
under the domain. ``renew_platform_certificates`` (daily) issues again what lapses within 30 days.
"""

from __future__ import annotations

import frappe
from cryptography import x509
from press.agent import Agent

from press_selfhosted.agent import cluster
from press_selfhosted.engine import acme, platform_ca
from press_selfhosted.press_selfhosted.doctype.platform_certificate_authority.platform_certificate_authority import (
	authority,
)


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
	issued = ca.issue(platform_ca.root_domain_names(domain))
	values = {
		"domain": domain,
		"wildcard": 1,
		"provider": "Other",
		"team": cluster.operator_team(),
		"rsa_key_size": str(platform_ca.LEAF_KEY_BITS),
		"certificate": issued.certificate,
		"intermediate_chain": issued.chain,
		# Press fills it only when empty: a renewal would keep (and check the new key against) the old chain
		"full_chain": issued.full_chain,
		"private_key": issued.private_key,
		"certificate_issuer": acme.issuer_name(x509.load_pem_x509_certificate(issued.certificate.encode())),
	}
	if frappe.db.exists("TLS Certificate", name):
		doc = frappe.get_doc("TLS Certificate", name)
		doc.update(values)
		doc.save(ignore_permissions=True)
	else:
		doc = frappe.get_doc({"doctype": "TLS Certificate", **values}).insert(ignore_permissions=True)
	return {"certificate": doc.name, "issued": True, "jobs": deliver(doc)}


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
	"""Scheduler (daily): the platform CA's certificates that lapse within 30 days, issued again."""
	ca_certificate = frappe.db.get_single_value("Platform Certificate Authority", "certificate")
	if not ca_certificate:
		return
	ca = authority()
	for row in frappe.get_all(
		"TLS Certificate", filters={"provider": "Other", "wildcard": 1}, fields=["domain", "certificate"]
	):
		if ca.issued(row.certificate or "") and platform_ca.renewal_due(row.certificate):
			certify_root_domain(row.domain, renew=True)
			frappe.db.commit()
