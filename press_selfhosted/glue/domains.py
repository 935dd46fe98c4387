"""Custom domains of sites on container servers, checked against the operator's DNS.

Press checks a domain against fixed public resolvers before it adds it (``press.utils.dns``): on a LAN
or air-gapped platform they cannot be reached, the check never matches, and Press's ``add_domain``
then does nothing at all, silently. For sites on container servers the check asks the resolvers the
operator lists in the site config (``press_selfhosted_dns_nameservers``; empty: the host's own) whether
the domain points at the site's proxy (``engine.clients.domain_dns``):

- ``ContainerAwareSite.add_domain`` (the dashboard's and REST API's path) and ``check_dns`` (what the
  dashboard's Add Domain dialog asks first, ``override_whitelisted_methods``) use it for container sites
  and leave every other site to Press;
- a Site Domain inserted any other way (the desk, a script) is checked before insert, so that no route
  or certificate is ever made for a domain that does not point here.
"""

from __future__ import annotations

import json

import frappe
from press.api.client import dashboard_whitelist
from press.api.site import check_dns as press_check_dns
from press.api.site import protected
from press.press.doctype.root_domain.root_domain import get_matching_domain
from press.press.doctype.site.site import Site
from press.press.doctype.site_activity.site_activity import log_site_activity

from press_selfhosted.engine.clients import domain_dns
from press_selfhosted.engine.errors import DomainNotPointingHere, EngineError
from press_selfhosted.record_rules.doc_events import site_on_container_server


def proxy_target(site: str) -> domain_dns.ProxyTarget:
	"""What a custom domain of ``site`` may point at: the site's name, its proxy server's name and IP."""
	server = frappe.db.get_value("Site", site, "server")
	proxy = frappe.db.get_value("Server", server, "proxy_server") if server else None
	ip = frappe.db.get_value("Proxy Server", proxy, "ip") if proxy else None
	return domain_dns.ProxyTarget(
		site=site, names=tuple(name for name in (site, proxy) if name), addresses=(ip,) if ip else ()
	)


def check(site: str, domain: str) -> domain_dns.DomainDns:
	"""The domain's record that points at the site's proxy; an engine error saying what to fix otherwise."""
	nameservers = domain_dns.parse_nameservers(frappe.conf.get(domain_dns.NAMESERVERS_FIELD))
	return domain_dns.check_domain(domain, proxy_target(site), nameservers)


def _normalized(domain: str) -> str:
	domain = (domain or "").lower().strip().strip(".")
	if reserved := get_matching_domain(domain):
		frappe.throw(
			f"Cannot add {domain}: it is under the platform's root domain {reserved}, whose names the platform gives out."
		)
	return domain


def _checked(site: str, domain: str) -> domain_dns.DomainDns:
	try:
		return check(site, domain)
	except EngineError as error:
		frappe.throw(str(error), title="Custom domain")


def dns_response(found: domain_dns.DomainDns) -> str:
	"""Site Domain's ``dns_response``: what was seen, for the operator and the tenant."""
	return json.dumps({"matched": True, "type": found.kind, "answer": found.answer}, indent=4)


class ContainerAwareSite(Site):
	@dashboard_whitelist()
	@Site.site_action(["Active"])
	def add_domain(self, domain):
		if not site_on_container_server(self.name):
			return super().add_domain(domain)
		domain = _normalized(domain)
		if frappe.db.exists("Site Domain", {"domain": domain}):
			frappe.throw(f"The domain {frappe.bold(domain)} is unavailable. Please use a different domain.")
		found = _checked(self.name, domain)
		log_site_activity(self.name, "Add Domain")
		site_domain = frappe.get_doc(
			{
				"doctype": "Site Domain",
				"status": "Pending",
				"site": self.name,
				"domain": domain,
				"dns_type": found.kind,
				"dns_response": dns_response(found),
			}
		)
		site_domain.flags.dns_checked = True
		site_domain.insert()

	def retry_add_domain(self, domain):
		"""The dashboard's Retry of a custom domain that is not Active, checked against the operator's DNS
		(Press's own check asks public resolvers, and on a LAN it never matches: the retry then silently
		did nothing). A domain whose certificate the site's proxy obtains by ACME keeps its status: the
		proxy is asked again (``certificates.ContainerAwareTLSCertificate``) and the hourly watch marks it
		Active with its certificate; any other goes through Press's Site Domain retry."""
		if not site_on_container_server(self.name):
			return super().retry_add_domain(domain)
		_checked(self.name, domain)
		found = frappe.db.get_value(
			"Site Domain",
			{"site": self.name, "domain": domain, "status": ("!=", "Active"), "retry_count": ("<=", 5)},
			["name", "retry_count", "tls_certificate"],
			as_dict=True,
		)
		if not found:
			frappe.throw(
				f"{domain} is not a custom domain of {self.name} that waits for a retry (it is Active, or was "
				"retried more than 5 times: remove it and add it again)."
			)
		if found.tls_certificate and frappe.db.get_value(
			"TLS Certificate", found.tls_certificate, "acme_proxy_server"
		):
			frappe.db.set_value("Site Domain", found.name, "retry_count", found.retry_count + 1)
			frappe.get_doc("TLS Certificate", found.tls_certificate).obtain_certificate()
		else:
			frappe.get_doc("Site Domain", found.name).retry()


@frappe.whitelist()
@protected("Site")
def check_dns(name, domain):
	"""The dashboard's DNS check: Press's answer shape (``matched``, ``type``, ``CNAME``/``A`` with their
	``answer``), from the operator's resolvers for sites on container servers."""
	if not site_on_container_server(name):
		return press_check_dns(name, domain)
	domain = _normalized(domain)
	try:
		found = check(name, domain)
	except DomainNotPointingHere as error:
		seen = {"matched": False, "answer": str(error)}
		return {"matched": False, "valid": False, "CNAME": seen, "A": seen}
	except EngineError as error:
		frappe.throw(str(error), title="Custom domain")
	answer = {"matched": True, "answer": found.answer}
	return {"matched": True, "valid": True, "type": found.kind, found.kind: answer}


def validate_site_domain(doc, method=None) -> None:
	"""Site Domain before insert: a custom domain of a container site points at its proxy (the site's own
	name, which Press inserts as the default domain, needs no check)."""
	if (
		doc.flags.dns_checked
		or doc.get("default")
		or doc.domain == doc.site
		or not site_on_container_server(doc.site)
	):
		return
	found = _checked(doc.site, doc.domain)
	doc.dns_type = found.kind
	doc.dns_response = dns_response(found)
