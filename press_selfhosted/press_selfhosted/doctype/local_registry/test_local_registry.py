# Copyright (c) 2026, press_selfhosted developers
# For license information, please see license.txt

import socket

import frappe

try:
	from frappe.tests import IntegrationTestCase as TestCase
except ImportError:  # Frappe before v16
	from frappe.tests.utils import FrappeTestCase as TestCase

DOCTYPE = "Local Registry"


def closed_port() -> int:
	with socket.socket() as sock:
		sock.bind(("127.0.0.1", 0))
		return sock.getsockname()[1]


def make(**values):
	fields = {
		"doctype": DOCTYPE,
		"title": f"test-registry-{frappe.generate_hash(length=8)}",
		"url": f"127.0.0.1:{closed_port()}",
		"namespace": "press",
	}
	fields.update(values)
	return frappe.get_doc(fields)


class TestLocalRegistry(TestCase):
	def test_valid_registry_is_saved_normalised(self):
		doc = make(
			url="https://Registry.Internal:5443/", username="press", password="secret-password"
		).insert()
		self.assertEqual(doc.url, "https://registry.internal:5443")
		self.assertEqual(doc.get_password("password"), "secret-password")

	def test_every_field_is_validated(self):
		for values, field in (
			({"url": "registry"}, "url"),
			({"url": "http://registry.internal:5000"}, "url"),
			({"namespace": "Press"}, "namespace"),
			({"username": "press"}, "password"),
			({"password": "secret"}, "username"),
			({"ca_bundle": "not a certificate"}, "ca_bundle"),
		):
			with self.subTest(field=field):
				with self.assertRaises(frappe.ValidationError) as raised:
					make(**values).insert()
				self.assertIn(field, str(raised.exception))

	def test_plain_http_allowed_when_marked_insecure(self):
		doc = make(url="http://registry.internal:5000", insecure=1).insert()
		self.assertEqual(doc.url, "http://registry.internal:5000")

	def test_only_one_default(self):
		first = make(is_default=1).insert()
		second = make(is_default=1).insert()
		self.assertEqual(frappe.db.get_value(DOCTYPE, first.name, "is_default"), 0)
		self.assertEqual(frappe.db.get_value(DOCTYPE, second.name, "is_default"), 1)

	def test_connection_to_a_closed_port_fails_with_a_clear_message(self):
		doc = make().insert()
		with self.assertRaises(frappe.ValidationError) as raised:
			doc.test_connection()
		self.assertIn("Cannot reach the registry", str(raised.exception))
