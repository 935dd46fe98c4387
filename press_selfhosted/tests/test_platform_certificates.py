"""The platform's own CA on a real Press: a root domain's wildcard issued, kept as Press's TLS Certificate
(provider Other, validated and dated by Press), sent to the cluster's container proxy by Press's Agent Job,
and served by Traefik by SNI with a chain that verifies against the CA alone; left alone while not due;
a renewal replaces both the record and what the proxy serves."""

from __future__ import annotations

import datetime

import frappe
from cryptography import x509
from frappe.tests import IntegrationTestCase
from frappe.utils import get_datetime, now_datetime

from press_selfhosted.engine.clients import platform_ca
from press_selfhosted.glue import cluster
from press_selfhosted.glue.platform_certificates import certify_root_domain
from press_selfhosted.tests import support


class TestPlatformCertificates(IntegrationTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.endpoints = support.prepare()
		cls.spec, cls.servers = support.active_cluster(cls.endpoints)
		cls.started = now_datetime()
		cls.name = f"*.{cls.spec.domain}"

	@classmethod
	def tearDownClass(cls):
		support.remove_cluster_containers(cls.endpoints, cls.servers)
		super().tearDownClass()

	def recorded_serial(self) -> int:
		pem = frappe.db.get_value("TLS Certificate", self.name, "certificate")
		return x509.load_pem_x509_certificate(pem.encode()).serial_number

	def certify(self, renew: bool = False) -> dict:
		done = certify_root_domain(self.spec.domain, renew=renew)
		frappe.db.commit()
		for job in done["jobs"]:
			support.wait_until(
				lambda job=job: support.status_of("Agent Job", job) == "Success",
				self.servers,
				what=f"Agent Job {job} Success",
			)
		return done

	def test_1_the_root_domain_is_certified_and_its_proxy_serves_it(self):
		done = self.certify()
		self.assertTrue(done["issued"])
		self.assertEqual(len(done["jobs"]), 1)
		record = frappe.db.get_value(
			"TLS Certificate",
			self.name,
			["status", "provider", "wildcard", "expires_on", "certificate_issuer"],
			as_dict=True,
		)
		self.assertEqual((record.status, record.provider, record.wildcard), ("Active", "Other", 1))
		common_name = frappe.db.get_single_value("Platform Certificate Authority", "common_name")
		self.assertEqual(record.certificate_issuer, common_name)
		left = get_datetime(record.expires_on) - now_datetime()
		self.assertTrue(datetime.timedelta(days=88) < left < datetime.timedelta(days=91), left)
		self.assertEqual(support.served_serial(f"shop.{self.spec.domain}"), self.recorded_serial())

	def test_2_a_certificate_not_due_is_left_as_it_is(self):
		before = self.recorded_serial()
		done = self.certify()
		self.assertEqual((done["issued"], done["jobs"]), (False, []))
		self.assertEqual(self.recorded_serial(), before)

	def test_3_a_renewal_replaces_the_record_and_what_the_proxy_serves(self):
		before = self.recorded_serial()
		done = self.certify(renew=True)
		self.assertTrue(done["issued"])
		after = self.recorded_serial()
		self.assertNotEqual(after, before)
		self.assertEqual(support.served_serial(f"shop.{self.spec.domain}", expected=after), after)

	def test_4_the_commands(self):
		current = support.bench_command("press-selfhosted", "certify-root-domain", self.spec.domain)
		self.assertEqual(current.returncode, 0, current.stdout + current.stderr)
		self.assertIn("current, not due for renewal", current.stdout)
		printed = support.bench_command("press-selfhosted", "platform-ca-certificate")
		self.assertEqual(printed.returncode, 0, printed.stderr)
		self.assertEqual(
			printed.stdout, frappe.db.get_single_value("Platform Certificate Authority", "certificate")
		)
		unknown = support.bench_command("press-selfhosted", "certify-root-domain", "nowhere.example.com")
		self.assertNotEqual(unknown.returncode, 0)
		self.assertIn("No Root Domain nowhere.example.com", unknown.stderr)

	def test_4b_a_certificate_the_ca_did_not_issue_is_never_replaced(self):
		domain = f"operator.{self.spec.domain}"
		frappe.get_doc(
			{
				"doctype": "Root Domain",
				"name": domain,
				"dns_provider": "Generic",
				"default_cluster": self.spec.cluster,
			}
		).insert(ignore_permissions=True)
		own = platform_ca.Authority.create("the operator's own CA").issue(
			platform_ca.root_domain_names(domain)
		)
		frappe.get_doc(
			{
				"doctype": "TLS Certificate",
				"domain": domain,
				"wildcard": 1,
				"provider": "Other",
				"team": cluster.operator_team(),
				"rsa_key_size": str(platform_ca.LEAF_KEY_BITS),
				"certificate": own.certificate,
				"intermediate_chain": own.chain,
				"private_key": own.private_key,
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		with self.assertRaises(frappe.ValidationError) as refused:
			certify_root_domain(domain, renew=True)
		self.assertIn("not issued by the platform CA", str(refused.exception))
		frappe.db.rollback()
		self.assertEqual(
			frappe.db.get_value("TLS Certificate", f"*.{domain}", "certificate"), own.certificate
		)

	def test_5_nothing_failed_in_the_background(self):
		self.assertEqual(support.problems_since(self.started, self.servers), [])
