# Copyright (c) 2026, press_selfhosted developers
# For license information, please see license.txt
"""A Root Domain's ACME DNS-01 settings on a real Press: refused on save with the field and the fix,
values stored encrypted, and the proxy's settings built from them."""

import frappe

try:
	from frappe.tests import IntegrationTestCase as TestCase
except ImportError:  # Frappe before v16
	from frappe.tests.utils import FrappeTestCase as TestCase

from press_selfhosted.glue import root_domains


def root_domain(**values):
	run = frappe.generate_hash(length=6)
	cluster = (
		frappe.db.get_value("Cluster", {}, "name")
		or frappe.get_doc({"doctype": "Cluster", "name": f"acme-{run}", "title": f"acme-{run}"})
		.insert(ignore_permissions=True)
		.name
	)
	fields = {
		"doctype": "Root Domain",
		"name": f"dns{run}.test",
		"dns_provider": "Generic",
		"default_cluster": cluster,
		"acme_challenge": "DNS-01",
		"acme_dns_provider": "cloudflare",
		"acme_dns_credentials": [{"variable": "CF_DNS_API_TOKEN", "value": "token-" + run}],
	}
	fields.update(values)
	return frappe.get_doc(fields)


class TestACMEDNSCredential(TestCase):
	def test_values_are_stored_encrypted_and_make_the_challenge(self):
		doc = root_domain(acme_dns_resolvers="1.1.1.1:53, 8.8.8.8:53", acme_dns_delay=20).insert()
		row = doc.acme_dns_credentials[0]
		stored = frappe.db.get_value("ACME DNS Credential", row.name, "value")
		self.assertNotIn("token-", stored)
		challenge = root_domains.dns_challenge(frappe.get_doc("Root Domain", doc.name))
		self.assertEqual(challenge.provider, "cloudflare")
		self.assertEqual(dict(challenge.credentials), {"CF_DNS_API_TOKEN": row.get_password("value")})
		self.assertEqual(challenge.resolvers, ("1.1.1.1:53", "8.8.8.8:53"))
		self.assertEqual(challenge.delay, 20)
		# saved again from the form (values masked), the stored value is kept
		again = frappe.get_doc("Root Domain", doc.name)
		again.acme_dns_delay = 30
		again.save()
		self.assertEqual(root_domains.dns_challenge(again).credentials, challenge.credentials)

	def test_wrong_settings_are_refused_naming_the_field_and_the_fix(self):
		cases = [
			({"acme_dns_provider": "Cloud Flare"}, "ACME DNS Provider: 'Cloud Flare' is not accepted"),
			(
				{"acme_dns_credentials": [{"variable": "cf_token", "value": "x"}]},
				"ACME DNS Credentials (variable): 'cf_token'",
			),
			(
				{
					"acme_dns_credentials": [
						{"variable": "CF_DNS_API_TOKEN", "value": "x"},
						{"variable": "CF_DNS_API_TOKEN", "value": "y"},
					]
				},
				"listed twice",
			),
			({"acme_dns_resolvers": "1.1.1.1"}, "ACME DNS Resolvers: '1.1.1.1' is not accepted"),
			({"dns_provider": "AWS Route 53"}, "set DNS Provider to Generic"),
		]
		for values, words in cases:
			with self.subTest(words), self.assertRaises(frappe.ValidationError) as refused:
				root_domain(**values).insert()
			self.assertIn(words, str(refused.exception))
			self.assertIn("Fix:", str(refused.exception))

	def test_http01_needs_nothing_more(self):
		doc = root_domain(acme_challenge="HTTP-01", acme_dns_provider="", acme_dns_credentials=[]).insert()
		self.assertIsNone(root_domains.dns_challenge(doc))
