"""ACME certificates as Press's TLS Certificate records, on a real Press: the cluster's container proxy
gets an ACME resolver pointed at the real pebble, a site name is routed to it by the proxy's own
"Add Site to Upstream" handler, Traefik obtains the site's certificate by HTTP-01, and
``watch_site_certificates`` keeps a record that matches what the proxy serves by SNI (serial, expiry, key);
Press never tries certbot for it; the report lists it; once the route is removed, so is the record. A root
domain set to DNS-01 on the desk gets its wildcard, recorded as ``*.<domain>``.

The site's route is written by the proxy handler directly (as Press's Agent Job would): no bench serves
it, since the certificate is Traefik's own business. pebble reaches the proxy as ``support.use_pebble``
says."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlparse

import frappe
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from frappe.tests import IntegrationTestCase
from frappe.utils import now_datetime

from press_selfhosted.engine.clients import acme
from press_selfhosted.engine.clients.proxy import Proxy
from press_selfhosted.engine.jobs.handlers import JobRecord, StepContext, index
from press_selfhosted.engine.jobs.proxy import ProxyJobs
from press_selfhosted.glue import certificates, settings, topology
from press_selfhosted.press_selfhosted.report.tls_certificate_expiry import tls_certificate_expiry
from press_selfhosted.tests import support
from press_selfhosted.tests.acme_services import EXEC_PATH, Relay, exec_script_archive

BENCH = "acme-records"  # the route's bench: nothing answers there, and nothing needs to


class SiteTopology(topology.FrappeTopology):
	"""Press's records, but the site has no Site record: its bench is the test's."""

	def bench_for_site(self, site: str) -> str:
		return BENCH


class TestAcmeCertificateRecords(IntegrationTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.endpoints = support.prepare()
		cls.spec, cls.servers = support.active_cluster(cls.endpoints)
		cls.started = now_datetime()
		cls.proxy_name = cls.servers["Proxy Server"]
		cls.site = f"acme-{uuid.uuid4().hex[:6]}.{cls.spec.domain}"
		cls.relays = []  # of the tests' own
		cls.pebble = None
		try:
			cls.pebble = support.use_pebble(cls.endpoints, cls.proxy_name)
			cls.pebble.point(cls.site)
		except BaseException:
			cls.tearDownClass()
			raise

	@classmethod
	def tearDownClass(cls):
		for relay in cls.relays:
			relay.close()
		if cls.pebble:
			cls.pebble.close()
		support.remove_cluster_containers(cls.endpoints, cls.servers)
		super().tearDownClass()

	def run_handler(self, job_type: str, payload: dict) -> None:
		"""The proxy's handler as the agent runs Press's Agent Job of that type."""
		server = topology.FrappeTopology().server("Proxy Server", self.proxy_name)
		handler = index(ProxyJobs(settings.proxy_settings).handlers())[job_type]
		client = support.docker_client(self.endpoints)
		output: list[str] = []  # a failing step raises with its own message
		job = JobRecord(
			id=1,
			job_type=job_type,
			server=server.name,
			server_type=server.server_type,
			method=handler.method,
			path=handler.path,
			bench=None,
			site=self.site,
			payload=payload,
		)
		ctx = StepContext(
			job, server, client, SiteTopology(), topology.FrappeSecrets(), output.append, lambda s: client
		)
		for step in handler.steps:
			step.run(ctx)

	def served(self, host: str | None = None) -> x509.Certificate:
		"""The certificate the proxy serves for ``host`` (the site), once it verifies against pebble's root."""
		return self.pebble.served(host or self.site)

	def sync_until(self, condition, what: str, timeout: float = 60):
		"""``watch_site_certificates``' work for this proxy, again until ``condition()`` holds (Traefik
		writes acme.json in the background, after it serves the certificate)."""
		deadline = time.monotonic() + timeout
		while True:
			certificates.sync_certificate_records(self.proxy_name)
			frappe.db.commit()
			value = condition()
			if value:
				return value
			if time.monotonic() > deadline:
				raise AssertionError(f"still waiting after {timeout:.0f}s: {what}")
			time.sleep(1)

	def record(self) -> dict | None:
		fields = [
			"name",
			"status",
			"provider",
			"wildcard",
			"expires_on",
			"certificate",
			"full_chain",
			"certificate_issuer",
			"acme_proxy_server",
			"retry_count",
			"error",
		]
		return frappe.db.get_value("TLS Certificate", self.site, fields, as_dict=True)

	def test_1_the_certificate_traefik_obtains_is_recorded_as_it_is_served(self):
		self.run_handler(
			"Add Site to Upstream", {"name": self.site, "path_args": {"upstream": self.spec.private_ip}}
		)
		served = self.served()
		record = self.sync_until(
			lambda: (found := self.record()) and found.status == "Active" and found, "an Active record"
		)
		leaf = x509.load_pem_x509_certificate(record.certificate.encode())
		self.assertEqual(leaf.serial_number, served.serial_number)
		self.assertEqual(record.expires_on, acme.not_after(served).replace(tzinfo=None))
		# provider Other: Press's certbot never ran for it (no retry, no error of its own)
		self.assertEqual((record.provider, record.wildcard, record.retry_count), ("Other", 0, 0))
		self.assertIsNone(record.error)
		self.assertEqual(record.acme_proxy_server, self.proxy_name)
		self.assertTrue(
			record.certificate_issuer.startswith("Pebble Intermediate CA"), record.certificate_issuer
		)
		self.assertTrue(record.full_chain.startswith(record.certificate))
		key = frappe.get_doc("TLS Certificate", self.site).get_password("private_key")
		public = serialization.load_pem_private_key(key.encode(), password=None).public_key()
		spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
		self.assertEqual(public.public_bytes(*spki), served.public_key().public_bytes(*spki))
		self.assertNotIn("PRIVATE KEY", frappe.db.get_value("TLS Certificate", self.site, "private_key"))

	def test_2_the_report_shows_its_days_left(self):
		_columns, rows = tls_certificate_expiry.execute()
		(row,) = [r for r in rows if r["name"] == self.site]
		self.assertEqual(row["status"], "Active")
		expires = frappe.db.get_value("TLS Certificate", self.site, "expires_on")
		# the report's clock and this one differ by a moment: at most a day boundary apart
		self.assertIn((expires - now_datetime()).days - row["days_left"], (0, -1))
		self.assertGreater(row["days_left"], 0)
		self.assertEqual(row["acme_proxy_server"], self.proxy_name)

	def test_3_a_second_look_changes_nothing(self):
		modified = frappe.db.get_value("TLS Certificate", self.site, "modified")
		certificates.sync_certificate_records(self.proxy_name)
		frappe.db.commit()
		self.assertEqual(frappe.db.get_value("TLS Certificate", self.site, "modified"), modified)

	def test_4_a_removed_route_removes_the_record(self):
		self.run_handler(
			"Remove Site from Upstream", {"path_args": {"upstream": self.spec.private_ip, "site": self.site}}
		)
		self.sync_until(lambda: not frappe.db.exists("TLS Certificate", self.site), "the record removed")

	def test_5_a_root_domains_wildcard_by_dns01_from_the_desk(self):
		"""The Root Domain asks for DNS-01 with lego's exec provider (a script publishing the TXT record in
		challtestsrv, its credential a file): the proxy serves *.<domain> and its record follows."""
		pebble = self.endpoints["pebble"]
		server = topology.FrappeTopology().server("Proxy Server", self.proxy_name)
		client = support.docker_client(self.endpoints)
		gateway = client.networks.get(server.network).attrs["IPAM"]["Config"][0]["Gateway"]
		management = urlparse(pebble["challtestsrv_url"])
		relay = Relay(gateway, (management.hostname, management.port))
		self.relays.append(relay)
		token = uuid.uuid4().hex
		proxy = Proxy.existing(client, server, settings.proxy_settings(server))
		# the provider's script first: Traefik asks for the wildcard as soon as its document is written
		proxy.traefik.put_archive(acme.ACME_DIRECTORY, exec_script_archive(token, f"{gateway}:{relay.port}"))
		domain = frappe.get_doc("Root Domain", self.spec.domain)
		domain.update(
			{
				"acme_challenge": "DNS-01",
				"acme_dns_provider": "exec",
				# challtestsrv answers on the host's loopback only, where the container cannot ask it
				"acme_dns_skip_propagation_check": 1,
				"acme_dns_credentials": [
					{"variable": "EXEC_PATH", "value": EXEC_PATH},
					{"variable": "PRESS_TEST_TOKEN", "value": token},
					# lego's exec provider solves one name at a time, 60 s apart unless told otherwise
					{"variable": "EXEC_SEQUENCE_INTERVAL", "value": "1"},
				],
			}
		)
		domain.save()
		frappe.db.commit()
		proxy = Proxy.ensure(client, server, settings.proxy_settings(server))
		self.assertNotIn(token, str(client.api.inspect_container(proxy.traefik.id)))
		served = self.served(f"anything.{self.spec.domain}")
		name = f"*.{self.spec.domain}"
		self.sync_until(
			lambda: frappe.db.get_value("TLS Certificate", name, "status") == "Active", f"{name} Active"
		)
		record = frappe.db.get_value(
			"TLS Certificate", name, ["certificate", "wildcard", "domain", "acme_proxy_server"], as_dict=True
		)
		leaf = x509.load_pem_x509_certificate(record.certificate.encode())
		self.assertEqual(leaf.serial_number, served.serial_number)
		self.assertEqual((record.wildcard, record.domain), (1, self.spec.domain))
		self.assertEqual(record.acme_proxy_server, self.proxy_name)

	def test_6_a_renewal_replaces_the_served_certificate_and_the_record(self):
		"""With an ACME server whose certificates hold ten minutes (pebble_short), Traefik renews a site's
		certificate on its own within a minute or two; the watch then records the new serial and expiry,
		which is what the proxy serves."""
		self.pebble.close()
		type(self).pebble = support.use_pebble(self.endpoints, self.proxy_name, "pebble_short")
		# not under the root domain, whose DNS-01 wildcard (test 5) would serve it
		self.site = f"renew-{uuid.uuid4().hex[:6]}.renewal.test"
		self.pebble.point(self.site)
		self.run_handler(
			"Add Site to Upstream", {"name": self.site, "path_args": {"upstream": self.spec.private_ip}}
		)
		first = self.served()
		self.sync_until(
			lambda: self.recorded_serial() == first.serial_number, "the first certificate recorded"
		)
		renewed = support.wait_until(
			lambda: (leaf := self.served()).serial_number != first.serial_number and leaf,
			self.servers,
			timeout=300,
			what=f"Traefik renewing {self.site}'s certificate",
		)
		self.assertGreater(renewed.not_valid_after, first.not_valid_after)
		self.sync_until(lambda: self.recorded_serial() == renewed.serial_number, "the renewal recorded")
		record = self.record()
		self.assertEqual((record.status, record.error), ("Active", None))
		self.assertEqual(record.expires_on, acme.not_after(renewed).replace(tzinfo=None))
		self.run_handler(
			"Remove Site from Upstream", {"path_args": {"upstream": self.spec.private_ip, "site": self.site}}
		)
		self.sync_until(lambda: not frappe.db.exists("TLS Certificate", self.site), "the record removed")

	def recorded_serial(self) -> int | None:
		found = self.record()
		return (
			x509.load_pem_x509_certificate(found.certificate.encode()).serial_number
			if found and found.certificate
			else None
		)

	def test_7_nothing_failed_in_the_background(self):
		self.assertEqual(support.problems_since(self.started, self.servers), [])
