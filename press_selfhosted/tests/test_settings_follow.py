"""Press's settings follow the app's default records, on a real Press: the registry fields and Clusters
follow the default Local Registry (no password published), the Backup Bucket and offsite keys follow the
default Storage Configuration — on a fresh Press whose settings cannot be saved yet, and with several
clusters."""

from __future__ import annotations

import tempfile
from pathlib import Path

import frappe
from frappe.tests import IntegrationTestCase
from frappe.utils.password import get_decrypted_password
from press.press.doctype.site_backup.site_backup import get_backup_bucket

from press_selfhosted.engine.clients import acme
from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.glue import settings
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


class TestRegistryAndStorageCommands(IntegrationTestCase):
	"""``press-selfhosted use-registry`` / ``use-storage``: the default records from the command line, the
	secrets read from a file (never an argument), checked against the real registry and S3 server."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.endpoints = support.prepare()

	def credentials(self, *lines: str) -> str:
		path = Path(tempfile.mkdtemp()) / "credentials"
		path.write_text("\n".join(lines) + "\n")
		return str(path)

	def test_use_registry_makes_the_default_local_registry_that_press_follows(self):
		url = f"http://{self.endpoints['registry']['url']}"
		done = support.bench_command("press-selfhosted", "use-registry", "--url", url, "--insecure")
		self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
		self.assertIn("answers; it is the default", done.stdout)
		frappe.db.rollback()
		self.assertEqual(frappe.db.get_value("Local Registry", {"is_default": 1}, "url"), url)
		self.assertEqual(
			frappe.db.get_single_value("Press Settings", "docker_registry_url"),
			self.endpoints["registry"]["url"],
		)
		again = support.bench_command("press-selfhosted", "use-registry", "--url", url, "--insecure")
		self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
		self.assertEqual(frappe.db.count("Local Registry", {"title": "default"}), 1)

	def test_use_storage_makes_the_default_storage_with_its_bucket_and_names_what_is_wrong(self):
		s3 = self.endpoints["s3"]
		keys = self.credentials(s3["access_key"], s3["secret_key"])
		argv = ["press-selfhosted", "use-storage", "--endpoint", s3["endpoint_url"], "--region", s3["region"]]
		done = support.bench_command(*argv, "--bucket", support.TEST_BUCKET, "--credentials-file", keys)
		self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
		self.assertIn("is writable; it is the default", done.stdout)
		self.assertNotIn(s3["secret_key"], done.stdout + done.stderr)
		frappe.db.rollback()
		name = frappe.db.get_value("Storage Configuration", {"is_default": 1})
		self.assertEqual(
			get_decrypted_password("Storage Configuration", name, "secret_key"), s3["secret_key"]
		)
		wrong = self.credentials(s3["access_key"], "not-the-secret")
		refused = support.bench_command(*argv, "--bucket", support.TEST_BUCKET, "--credentials-file", wrong)
		self.assertNotEqual(refused.returncode, 0)
		self.assertIn("Error:", refused.stderr)
		self.assertNotIn("not-the-secret", refused.stdout + refused.stderr)
		frappe.db.rollback()
		# a failed check changes nothing: the keys that work stay stored
		self.assertEqual(
			get_decrypted_password("Storage Configuration", name, "secret_key"), s3["secret_key"]
		)
