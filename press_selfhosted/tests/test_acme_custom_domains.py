"""A custom domain certified by ACME HTTP-01 through the proxy, on real Press: the cluster's container proxy
has an ACME resolver pointed at the real pebble and its root domain is not certified by the platform CA, so
a custom domain added through Press's API gets a TLS Certificate of provider "Other", Pending, without a
certificate (Press's certbot never runs), and "Add Host to Proxy" is sent at once without one: the proxy
routes the domain to its site and Traefik obtains the certificate by HTTP-01. The hourly watch then fills
the record with what the proxy serves by SNI (serial, expiry); the Site Domain is Active by Press's own
callback. Removing the domain through Press's API takes it off the proxy and removes the record.

A real bench and site (the project's stand-in bench image), as on an operator's first day."""

from __future__ import annotations

import time

import frappe
from cryptography import x509
from frappe.installer import update_site_config
from frappe.tests import IntegrationTestCase
from frappe.utils import now_datetime

from press_selfhosted.engine.clients import acme, domain_dns, site_router
from press_selfhosted.engine.clients.proxy import Proxy
from press_selfhosted.glue import certificates, settings, topology
from press_selfhosted.tests import support
from press_selfhosted.tests.acme_services import Relay


class TestAcmeCustomDomains(IntegrationTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.endpoints = support.prepare()
		support.use_local_registry(cls.endpoints)
		cls.spec, cls.servers = support.active_cluster(cls.endpoints)
		cls.group, _candidate, cls.build = support.release_group_with_image(cls.endpoints, cls.spec)
		frappe.db.commit()
		cls.proxy_name = cls.servers["Proxy Server"]
		cls.pebble = None
		try:
			cls.pebble = support.use_pebble(cls.endpoints, cls.proxy_name)
		except BaseException:
			cls.tearDownClass()
			raise
		cls.domain = f"shop-{frappe.generate_hash(length=8)}.example.test"
		# Press's own record making (App Source, Release Group) may complain about GitHub: what counts
		# is what happens from here on
		cls.started = now_datetime()

	@classmethod
	def tearDownClass(cls):
		if cls.pebble:
			cls.pebble.close()
		update_site_config(domain_dns.NAMESERVERS_FIELD, "None")  # Frappe removes a key set to "None"
		frappe.local.conf.pop(domain_dns.NAMESERVERS_FIELD, None)
		support.remove_cluster_containers(cls.endpoints, cls.servers)
		super().tearDownClass()

	def wait(self, condition, what, timeout=300):
		return support.wait_until(condition, self.servers, timeout=timeout, what=what)

	def proxy(self) -> Proxy:
		server = topology.FrappeTopology().server("Proxy Server", self.proxy_name)
		client = support.docker_client(self.endpoints)
		return Proxy.existing(client, server, settings.proxy_settings(server))

	def test_1_site_becomes_active(self):
		bench = support.deploy(self.build, self.servers)
		self.wait(lambda: support.status_of("Bench", bench) == "Active", f"Bench {bench} Active")
		site = support.new_site(bench, self.group, self.spec, "acme")
		frappe.db.commit()
		type(self).site = site
		self.wait(lambda: support.status_of("Site", site) == "Active", f"Site {site} Active")

	def test_2_a_custom_domain_is_certified_by_acme_and_recorded_as_served(self):
		# the operator's DNS (pebble's): the site and the domain at the address relayed to the proxy
		dns = self.endpoints["pebble"]["dns"]
		update_site_config(domain_dns.NAMESERVERS_FIELD, dns)
		frappe.local.conf[domain_dns.NAMESERVERS_FIELD] = dns
		for name in (self.site, self.domain):
			self.pebble.point(name)
		answer = support.api_call("press.api.site.add_domain", name=self.site, domain=self.domain)
		self.assertEqual(answer.status_code, 200, answer.text[:1000])

		# left to the proxy's resolver as Press inserted it: Press's certbot never ran
		frappe.db.rollback()  # a fresh snapshot: the web process committed it
		record = frappe.db.get_value(
			"TLS Certificate",
			self.domain,
			["provider", "status", "retry_count", "acme_proxy_server", "team", "certificate"],
			as_dict=True,
		)
		self.assertEqual(
			(
				record.provider,
				record.status,
				record.retry_count,
				record.acme_proxy_server,
				record.certificate,
			),
			("Other", "Pending", 0, self.proxy_name, None),
		)
		self.assertEqual(record.team, frappe.db.get_value("Site", self.site, "team"))
		self.wait(
			lambda: frappe.db.get_value("Site Domain", {"domain": self.domain}, "status") == "Active",
			f"Site Domain {self.domain} Active",
		)
		self.assertEqual(
			frappe.db.get_value("Site Domain", {"domain": self.domain}, "tls_certificate"), self.domain
		)
		route = self.proxy().site(self.site)
		self.assertEqual((route.domains, route.acme_domains), ((self.domain,), (self.domain,)))

		served = self.pebble.served(self.domain)
		self.assertEqual(
			served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
				x509.DNSName
			),
			[self.domain],
		)
		record = support.wait_until(
			lambda: self.synced_record(lambda found: found.status == "Active"),
			self.servers,
			timeout=60,
			what=f"TLS Certificate {self.domain} Active",
		)
		leaf = x509.load_pem_x509_certificate(record.certificate.encode())
		self.assertEqual(leaf.serial_number, served.serial_number)
		self.assertEqual(record.expires_on, acme.not_after(served).replace(tzinfo=None))
		self.assertEqual((record.provider, record.retry_count, record.error), ("Other", 0, None))
		self.assertTrue(
			record.certificate_issuer.startswith("Pebble Intermediate CA"), record.certificate_issuer
		)
		# a second look changes nothing
		modified = frappe.db.get_value("TLS Certificate", self.domain, "modified")
		certificates.sync_certificate_records(self.proxy_name)
		frappe.db.commit()
		self.assertEqual(frappe.db.get_value("TLS Certificate", self.domain, "modified"), modified)

	def synced_record(self, condition, domain: str | None = None):
		"""``watch_site_certificates``' work for this proxy, then the domain's record if ``condition`` holds
		(Traefik writes acme.json in the background, after it serves the certificate)."""
		certificates.sync_certificate_records(self.proxy_name)
		frappe.db.commit()
		fields = [
			"status",
			"provider",
			"retry_count",
			"error",
			"certificate",
			"expires_on",
			"certificate_issuer",
		]
		found = frappe.db.get_value("TLS Certificate", domain or self.domain, fields, as_dict=True)
		return found if found and condition(found) else None

	def test_3_a_domain_whose_challenge_failed_is_broken_then_retried_through_press(self):
		"""Nothing answers the domain's challenge (the relay to the proxy's port 80 is shut): its record
		turns Failure with the reason once the grace period is over, and its Site Domain Broken, as Press
		marks a domain whose certificate failed; the dashboard's Retry (Press's ``retry_add_domain``) then
		has the proxy ask again, and record and domain are Active with what the proxy serves."""
		domain = f"fail-{frappe.generate_hash(length=8)}.example.test"
		self.pebble.point(domain)
		challenge_relay = self.pebble.relays.pop()  # the one pebble's HTTP-01 requests reach the proxy by
		challenge_relay.close()
		answer = support.api_call("press.api.site.add_domain", name=self.site, domain=domain)
		self.assertEqual(answer.status_code, 200, answer.text[:1000])
		self.wait(
			lambda: frappe.db.get_value("Site Domain", {"domain": domain}, "status") == "Active",
			f"Site Domain {domain} Active (routed)",
		)
		proxy = self.proxy()
		self.wait(
			lambda: f"[{domain}]" in proxy.traefik.logs(tail=50).decode(),
			"Traefik failing the challenge",
			120,
		)
		# the grace period over: the route file written 31 minutes ago
		routed = int(time.time()) - 31 * 60
		route_file = f"{site_router.DIRECTORY}/{site_router.map_file(domain)}"
		self.assertEqual(proxy.router.exec_run(["touch", "-d", f"@{routed}", route_file]).exit_code, 0)
		certificates.sync_certificate_records(self.proxy_name)
		frappe.db.commit()
		record = frappe.db.get_value("TLS Certificate", domain, ["status", "error"], as_dict=True)
		self.assertEqual(record.status, "Failure")
		self.assertIn("no certificate since its route was written", record.error)
		self.assertIn("Fix:", record.error)
		self.assertEqual(frappe.db.get_value("Site Domain", {"domain": domain}, "status"), "Broken")

		self.pebble.relays.append(
			Relay(self.pebble.address, challenge_relay.target, port=support.PEBBLE_HTTP_PORT)
		)
		answer = support.api_call("press.api.site.retry_add_domain", name=self.site, domain=domain)
		self.assertEqual(answer.status_code, 200, answer.text[:1000])
		frappe.db.rollback()  # a fresh snapshot: the web process committed it
		record = frappe.db.get_value(
			"TLS Certificate", domain, ["status", "error", "retry_count"], as_dict=True
		)
		self.assertEqual((record.status, record.error, record.retry_count), ("Pending", None, 1))
		served = self.pebble.served(domain)  # the background job had the proxy ask again
		record = support.wait_until(
			lambda: self.synced_record(lambda found: found.status == "Active", domain),
			self.servers,
			timeout=60,
			what=f"TLS Certificate {domain} Active",
		)
		leaf = x509.load_pem_x509_certificate(record.certificate.encode())
		self.assertEqual(
			(leaf.serial_number, record.retry_count, record.error), (served.serial_number, 0, None)
		)
		self.assertEqual(frappe.db.get_value("Site Domain", {"domain": domain}, "status"), "Active")
		answer = support.api_call("press.api.site.remove_domain", name=self.site, domain=domain)
		self.assertEqual(answer.status_code, 200, answer.text[:1000])

	def test_4_a_removed_domain_leaves_the_proxy_and_its_record_goes(self):
		answer = support.api_call("press.api.site.remove_domain", name=self.site, domain=self.domain)
		self.assertEqual(answer.status_code, 200, answer.text[:1000])
		job = frappe.db.get_value(
			"Agent Job",
			{"job_type": "Remove Host from Proxy", "site": self.site},
			"name",
			order_by="creation desc",
		)
		self.wait(lambda: support.status_of("Agent Job", job) == "Success", f"Agent Job {job}")
		proxy = self.proxy()
		route = proxy.site(self.site)
		self.assertEqual((route.domains, route.acme_domains), ((), ()))
		self.assertNotIn(self.domain, proxy.sites().acme_names)
		self.assertIn(self.site, proxy.sites().acme_names)
		self.assertFalse(frappe.db.exists("TLS Certificate", self.domain))
		self.assertFalse(frappe.db.exists("Site Domain", {"domain": self.domain}))

	def test_5_nothing_failed_in_the_background(self):
		self.assertEqual(support.problems_since(self.started, self.servers), [])
