"""Press's settings follow the app's default records, on a real Press: the registry fields and Clusters
follow the default Local Registry (no password published), the Backup Bucket and offsite keys follow the
default Storage Configuration — on a fresh Press whose settings cannot be saved yet, and with several
clusters."""

from __future__ import annotations

import frappe
from frappe.tests import IntegrationTestCase
from frappe.utils.password import get_decrypted_password
from press.press.doctype.site_backup.site_backup import get_backup_bucket

from press_selfhosted.agent import settings
from press_selfhosted.engine import acme
from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.tests import support


class TestSettingsFollow(IntegrationTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.endpoints = support.prepare()

	def test_press_registry_fields_and_clusters_follow_the_default_local_registry(self):
		support.use_local_registry(self.endpoints)
		host = self.endpoints["registry"]["url"]
		self.assertEqual(frappe.db.get_single_value("Press Settings", "docker_registry_url"), host)
		self.assertFalse(frappe.db.get_single_value("Press Settings", "docker_registry_password"))
		self.assertEqual(frappe.db.get_value("Cluster", "Default", "repository"), host)

	def test_backup_bucket_and_offsite_keys_follow_the_default_storage_on_a_fresh_press_with_two_clusters(
		self,
	):
		# a fresh Press: the certbot fields its own save() requires are empty
		saved = {
			f: frappe.db.get_single_value("Press Settings", f)
			for f in ("certbot_directory", "eff_registration_email")
		}
		frappe.db.set_single_value("Press Settings", {field: "" for field in saved})
		other = f"t{frappe.generate_hash(length=6)}"
		frappe.get_doc({"doctype": "Cluster", "name": other, "cloud_provider": "Generic"}).insert()
		try:
			bucket = support.use_local_storage(self.endpoints)
			self.assertEqual(
				frappe.get_all("Backup Bucket", filters={"bucket_name": bucket}, pluck="name"), [bucket]
			)
			for cluster in ("Default", other):
				self.assertEqual(get_backup_bucket(cluster, region=True)["name"], bucket, cluster)
			self.assertEqual(
				frappe.db.get_value("Backup Bucket", bucket, "endpoint_url"),
				self.endpoints["s3"]["endpoint_url"],
			)
			self.assertEqual(
				get_decrypted_password(
					"Press Settings", "Press Settings", "offsite_backups_secret_access_key"
				),
				self.endpoints["s3"]["secret_key"],
			)
		finally:
			frappe.db.set_single_value("Press Settings", saved)
			frappe.db.commit()

	def test_proxy_settings_come_from_the_site_config_and_a_wrong_value_is_named(self):
		conf = frappe.local.conf
		saved = {
			key: conf.get(key) for key in (acme.CONFIG_EMAIL, acme.CONFIG_DIRECTORY, settings.PROXY_HTTP_PORT)
		}
		try:
			conf[acme.CONFIG_EMAIL] = "ops@example.com"
			conf[acme.CONFIG_DIRECTORY] = "https://acme.internal/dir"
			proxy = settings.proxy_settings()
			self.assertEqual(
				(proxy.acme.email, proxy.acme.directory_url),
				("ops@example.com", "https://acme.internal/dir"),
			)
			conf[settings.PROXY_HTTP_PORT] = "eighty"
			with self.assertRaises(ValidationError) as refused:
				settings.proxy_settings()
			self.assertEqual(refused.exception.field, settings.PROXY_HTTP_PORT)
		finally:
			conf.update(saved)
