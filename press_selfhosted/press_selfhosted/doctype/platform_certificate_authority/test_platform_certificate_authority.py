# Copyright (c) 2026, press_selfhosted developers
# For license information, please see license.txt

import frappe

try:
	from frappe.tests import IntegrationTestCase as TestCase
except ImportError:  # Frappe before v16
	from frappe.tests.utils import FrappeTestCase as TestCase

from press_selfhosted.press_selfhosted.doctype.platform_certificate_authority.platform_certificate_authority import (
	DOCTYPE,
	authority,
)


class TestPlatformCertificateAuthority(TestCase):
	def test_made_once_with_its_key_encrypted(self):
		first = authority()
		self.assertEqual(authority(), first)
		stored = frappe.db.get_single_value(DOCTYPE, "private_key")
		self.assertNotIn("PRIVATE KEY", stored or "")
		self.assertEqual(frappe.get_single(DOCTYPE).get_password("private_key"), first.private_key)
		self.assertIn("BEGIN CERTIFICATE", frappe.db.get_single_value(DOCTYPE, "certificate"))
