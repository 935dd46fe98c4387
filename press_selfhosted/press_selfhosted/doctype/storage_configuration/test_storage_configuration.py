# Copyright (c) 2026, press_selfhosted developers
# For license information, please see license.txt

import socket

import frappe

try:
	from frappe.tests import IntegrationTestCase as TestCase
except ImportError:  # Frappe before v16
	from frappe.tests.utils import FrappeTestCase as TestCase

DOCTYPE = "Storage Configuration"


def closed_port() -> int:
	with socket.socket() as sock:
		sock.bind(("127.0.0.1", 0))
		return sock.getsockname()[1]


def make(**values):
	fields = {
		"doctype": DOCTYPE,
		"title": f"test-storage-{frappe.generate_hash(length=8)}",
		"endpoint_url": f"http://127.0.0.1:{closed_port()}",
		"access_key": "press-test",
		"secret_key": "press-test-secret-key",
		"default_bucket": "press-test-backups",
		"connect_timeout": 2,
	}
	fields.update(values)
	return frappe.get_doc(fields)


class TestStorageConfiguration(TestCase):
	def test_valid_configuration_is_saved_with_encrypted_keys(self):
		doc = make(endpoint_url="HTTP://MinIO.Internal:9000/").insert()
		self.assertEqual(doc.endpoint_url, "http://minio.internal:9000")
		self.assertEqual(doc.get_password("secret_key"), "press-test-secret-key")
		self.assertNotEqual(frappe.db.get_value(DOCTYPE, doc.name, "secret_key"), "press-test-secret-key")

	def test_every_field_is_validated(self):
		for field, bad in (
			("endpoint_url", "minio:9000"),
			("default_bucket", "Bad_Bucket"),
			("region", "eu central"),
			("addressing_style", "auto"),
			("connect_timeout", 600),
			("minio_prefix", "a/../b"),
			("ca_bundle", "not a certificate"),
			("secret_key", "short"),
		):
			with self.subTest(field=field):
				with self.assertRaises(frappe.ValidationError) as raised:
					make(**{field: bad}).insert()
				self.assertIn(field, str(raised.exception))
				self.assertIn("Fix:", str(raised.exception))

	def test_only_one_default(self):
		first = make(is_default=1).insert()
		second = make(is_default=1).insert()
		self.assertEqual(frappe.db.get_value(DOCTYPE, first.name, "is_default"), 0)
		self.assertEqual(frappe.db.get_value(DOCTYPE, second.name, "is_default"), 1)
		self.assertEqual(frappe.db.count(DOCTYPE, {"is_default": 1}), 1)

	def test_unchanged_secret_is_not_validated_again(self):
		doc = make().insert()
		doc.reload()
		doc.region = "us-west-2"
		doc.save()
		self.assertEqual(doc.get_password("secret_key"), "press-test-secret-key")

	def test_connection_to_a_closed_port_fails_with_a_clear_message(self):
		doc = make().insert()
		with self.assertRaises(frappe.ValidationError) as raised:
			doc.test_connection()
		message = str(raised.exception)
		self.assertIn("Cannot reach the S3 endpoint", message)
		self.assertNotIn("press-test-secret-key", message)
