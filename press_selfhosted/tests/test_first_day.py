"""An operator's first day on real Press, driven through Press's own code: an all-in-one cluster set up,
a bench and a site made Active, the site reached through Traefik, backed up into S3 (MinIO fields and
checksums recorded), verified and restore-drilled, suspended and unsuspended, archived (the archive
backup recorded, older backups deleted), a Broken site archived, the bench archived; and nothing failing
in the background: no Error Log, Agent Request Failure or failed Agent Job.

One scenario, in order (unittest runs the steps by name). The bench image is the project's stand-in
bench (tests/images/bench), pushed to the local registry under Press's image name.
"""

from __future__ import annotations

import json

import boto3
import frappe
import requests
from cryptography import x509
from frappe.installer import update_site_config
from frappe.tests import IntegrationTestCase
from frappe.utils import now_datetime

from press_selfhosted import api
from press_selfhosted.engine.clients import domain_dns
from press_selfhosted.glue import backups
from press_selfhosted.glue.platform_certificates import certify_root_domain, renew_custom_domain
from press_selfhosted.press_selfhosted.doctype.platform_certificate_authority.platform_certificate_authority import (
	authority,
)
from press_selfhosted.tests import support


class TestFirstDay(IntegrationTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.endpoints = support.prepare()
		cls.config = frappe.conf
		support.use_local_registry(cls.endpoints)
		cls.bucket = support.use_local_storage(cls.endpoints)
		cls.spec, cls.servers = support.active_cluster(cls.endpoints)
		cls.group, cls.candidate, cls.build = support.release_group_with_image(cls.endpoints, cls.spec)
		frappe.db.commit()
		# Press's own record making (App Source, Release Group) may complain about GitHub: what counts
		# is what happens from here on
		cls.started = now_datetime()

	@classmethod
	def tearDownClass(cls):
		support.remove_cluster_containers(cls.endpoints, cls.servers)
		super().tearDownClass()

	def wait(self, condition, what, timeout=300):
		return support.wait_until(condition, self.servers, timeout=timeout, what=what)

	def site_url(self) -> str:
		return f"http://127.0.0.1:{self.config['press_selfhosted_proxy_http_port']}"

	def get_through_traefik(self, site: str, path: str = "/api/method/ping") -> requests.Response:
		return requests.get(self.site_url() + path, headers={"Host": site}, timeout=10)

	def test_1_bench_becomes_active(self):
		bench = support.deploy(self.build, self.servers)
		type(self).bench = bench
		self.wait(lambda: support.status_of("Bench", bench) == "Active", f"Bench {bench} Active")
		client = support.docker_client(self.endpoints)
		running = {c.name for c in client.containers.list(filters={"label": f"press.bench={bench}"})}
		self.assertEqual(
			running, {f"{self.spec.container_prefix}-{bench}", f"{self.spec.container_prefix}-{bench}-front"}
		)

	def test_2_site_becomes_active_and_answers_through_traefik(self):
		site = support.new_site(self.bench, self.group, self.spec, "first")
		frappe.db.commit()
		type(self).site = site
		self.wait(lambda: support.status_of("Site", site) == "Active", f"Site {site} Active")
		answer = self.get_through_traefik(site)
		self.assertEqual(answer.status_code, 200, answer.text[:300])
		self.assertEqual(answer.json(), {"message": "pong"})
		apps = [row.app for row in frappe.get_doc("Site", site).apps]
		self.assertEqual(apps, ["frappe"])

	def test_2b_a_custom_domain_is_checked_against_the_operators_dns(self):
		"""Press's own check asks public resolvers this bench cannot reach (its add_domain would silently do
		nothing); container sites are checked against the resolvers the site config names, here the local
		ACME server's DNS, through Press's own API paths and the desk's."""
		dns = self.endpoints["pebble"]
		update_site_config(domain_dns.NAMESERVERS_FIELD, dns["dns"])
		frappe.local.conf[domain_dns.NAMESERVERS_FIELD] = dns["dns"]
		tag = frappe.generate_hash(length=8)
		good, bad = f"shop-{tag}.example.test", f"elsewhere-{tag}.example.test"
		records = [("set-cname", {"host": f"{good}.", "target": f"{self.site}."}, "clear-cname")]
		records.append(("add-a", {"host": f"{bad}.", "addresses": ["198.51.100.7"]}, "clear-a"))
		for path, body, _ in records:
			requests.post(f"{dns['challtestsrv_url']}/{path}", json=body, timeout=5).raise_for_status()
		try:
			# the dashboard's Add Domain dialog: Press's answer shape
			answer = support.api_call("press.api.site.check_dns", name=self.site, domain=good)
			self.assertEqual(answer.status_code, 200, answer.text[:500])
			self.assertEqual(
				(answer.json()["message"]["matched"], answer.json()["message"]["type"]), (True, "CNAME")
			)
			answer = support.api_call("press.api.site.check_dns", name=self.site, domain=bad)
			refusal = answer.json()["message"]
			self.assertFalse(refusal["matched"])
			self.assertIn(f"CNAME record {bad} → {self.site}", refusal["CNAME"]["answer"])

			# Press's add_domain (dashboard and REST) refuses it with what to fix, and makes nothing
			answer = support.api_call("press.api.site.add_domain", name=self.site, domain=bad)
			self.assertNotEqual(answer.status_code, 200)
			self.assertIn("198.51.100.7", answer.text)
			# so does a Site Domain made on the desk
			with self.assertRaisesRegex(frappe.ValidationError, "CNAME record"):
				frappe.get_doc(
					{"doctype": "Site Domain", "site": self.site, "domain": bad, "status": "Pending"}
				).insert()
			self.assertFalse(frappe.db.exists("Site Domain", {"domain": bad}))
		finally:
			for _, body, clear in records:
				requests.post(f"{dns['challtestsrv_url']}/{clear}", json={"host": body["host"]}, timeout=5)

	def test_2c_a_custom_domain_is_certified_by_the_platform_ca_and_answers(self):
		"""Where the platform CA certifies the root domain, a custom domain added through Press's API gets
		its TLS Certificate from the CA (no certbot), Press's Site Domain flow sends it with Add Host to
		Proxy, and the proxy serves it by SNI and routes the domain to its site; a renewal replaces both."""
		for job in certify_root_domain(self.spec.domain)["jobs"]:
			self.wait(lambda job=job: support.status_of("Agent Job", job) == "Success", f"Agent Job {job}")
		dns = self.endpoints["pebble"]
		domain = f"www-{frappe.generate_hash(length=8)}.example.test"
		cname = {"host": f"{domain}.", "target": f"{self.site}."}
		requests.post(f"{dns['challtestsrv_url']}/set-cname", json=cname, timeout=5).raise_for_status()
		type(self).custom_domain = domain
		answer = support.api_call("press.api.site.add_domain", name=self.site, domain=domain)
		self.assertEqual(answer.status_code, 200, answer.text[:1000])
		self.wait(
			lambda: frappe.db.get_value("Site Domain", {"domain": domain}, "status") == "Active",
			f"Site Domain {domain} Active",
		)
		record = frappe.db.get_value(
			"TLS Certificate", domain, ["provider", "status", "certificate"], as_dict=True
		)
		self.assertEqual((record.provider, record.status), ("Other", "Active"))
		recorded = x509.load_pem_x509_certificate(record.certificate.encode()).serial_number
		self.assertEqual(support.served_serial(domain, expected=recorded), recorded)
		answer = self.get_through_traefik(domain)
		self.assertEqual((answer.status_code, answer.json()), (200, {"message": "pong"}))

		job = renew_custom_domain(authority(), domain)
		frappe.db.commit()
		self.wait(lambda: support.status_of("Agent Job", job) == "Success", f"Agent Job {job}")
		renewed = frappe.db.get_value("TLS Certificate", domain, "certificate")
		serial = x509.load_pem_x509_certificate(renewed.encode()).serial_number
		self.assertNotEqual(serial, recorded)
		self.assertEqual(support.served_serial(domain, expected=serial), serial)

	def test_3_backup_is_recorded_with_its_objects_and_checksums(self):
		backup = support.backup(self.site)
		frappe.db.commit()
		type(self).first_backup = backup
		done = self.wait(
			lambda: (
				frappe.db.get_value("Site Backup", backup, ["status", "minio_checksums"], as_dict=True)
				if support.status_of("Site Backup", backup) == "Success"
				else None
			),
			f"Site Backup {backup} Success",
		)
		self.assertTrue(done.minio_checksums, "the MinIO fields are recorded where the job ends")
		record = frappe.get_doc("Site Backup", backup)
		self.assertEqual(record.minio_bucket, self.bucket)
		checksums = json.loads(record.minio_checksums)
		self.assertEqual(
			set(checksums),
			{record.database_file, record.public_file, record.private_file, record.config_file},
		)
		s3 = boto3.client(
			"s3",
			endpoint_url=self.endpoints["s3"]["endpoint_url"],
			aws_access_key_id=self.endpoints["s3"]["access_key"],
			aws_secret_access_key=self.endpoints["s3"]["secret_key"],
			region_name=self.endpoints["s3"]["region"],
		)
		for name in checksums:
			found = s3.head_object(Bucket=self.bucket, Key=f"{record.minio_prefix}/{name}")
			self.assertGreater(found["ContentLength"], 0)

	def test_4_backup_verifies_and_its_restore_drill_passes(self):
		report = api.verify_backup(self.first_backup)
		self.assertEqual(report, {"backup": self.first_backup, "ok": True, "failed": []})
		backups.run_restore_drills(site_name=self.site)
		site = frappe.get_doc("Site", self.site)
		self.assertTrue(site.last_verified_restore, site.last_restore_drill_result)

	def test_4b_operator_api_and_bench_commands(self):
		jobs = api.agent_jobs(self.servers["Server"], limit=5)
		self.assertTrue(
			jobs and all(job["status"] in ("Pending", "Running", "Success", "Failure") for job in jobs)
		)
		with self.assertRaises(frappe.ValidationError):
			api.agent_jobs(self.servers["Server"], limit=1000)
		usage = api.site_usage(self.site)
		frappe.db.commit()  # as the API's request would: the bench commands below write the same Site
		self.assertEqual(usage["action"], "none", usage)
		json.dumps(usage, default=str)  # answered as JSON
		with self.assertRaises(frappe.DoesNotExistError):
			api.run_restore_drill("no-such-site.example.com")
		self.assertNotIn(
			f"{self.site}/", " ".join(api.retention_plan()), "the newest backup of an active site is kept"
		)
		listed = support.bench_command("press-selfhosted", "jobs", self.servers["Server"], "--limit", "3")
		self.assertIn("Backup Site", listed.stdout + listed.stderr)
		verified = support.bench_command("press-selfhosted", "verify-backups", "--days", "1")
		self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
		self.assertIn(f"{self.first_backup}: ok", verified.stdout)
		finished = frappe.db.get_value("Agent Job", {"site": self.site, "job_type": "Backup Site"}, "job_id")
		for argv, expected in (
			(("sweep",), "re-enqueued: []"),
			(("run-job", str(finished)), "Success"),
			(("retention", "--dry-run"), "would delete"),
			(("registry-cleanup", "--dry-run"), "kept"),
			(("restore-drill", self.site), "answers and holds the"),
		):
			answer = support.bench_command("press-selfhosted", *argv)
			self.assertEqual(answer.returncode, 0, answer.stdout + answer.stderr)
			self.assertIn(expected, answer.stdout, argv)

	def test_5_suspended_site_serves_the_suspended_page_then_comes_back(self):
		support.save_with_latest("Site", self.site, lambda site: site.suspend(reason="test"))
		self.wait(lambda: self.get_through_traefik(self.site).status_code == 503, "the suspended page")
		self.assertIn("suspended", self.get_through_traefik(self.site, "/").text.lower())
		support.save_with_latest("Site", self.site, lambda site: site.unsuspend(reason="test"))
		self.wait(lambda: self.get_through_traefik(self.site).status_code == 200, "the site again")
		self.wait(
			lambda: (
				not frappe.db.exists(
					"Agent Job", {"site": self.site, "status": ("in", ("Pending", "Running", "Undelivered"))}
				)
			),
			"suspend and unsuspend jobs done",
		)

	def test_5b_site_update_moves_the_site_to_a_new_bench(self):
		_candidate, build = support.new_build(self.endpoints, self.spec, self.group)
		bench = support.deploy(build, self.servers)
		self.wait(lambda: support.status_of("Bench", bench) == "Active", f"Bench {bench} Active")
		update = frappe.get_doc("Site", self.site).schedule_update()
		frappe.db.commit()
		self.wait(
			lambda: support.status_of("Site Update", update) in ("Success", "Failure", "Fatal", "Recovered"),
			f"Site Update {update} ended",
			timeout=600,
		)
		self.assertEqual(support.status_of("Site Update", update), "Success")
		self.assertEqual(frappe.db.get_value("Site", self.site, "bench"), bench)
		self.wait(lambda: self.get_through_traefik(self.site).status_code == 200, "the site on its new bench")
		type(self).old_bench, type(self).bench = self.bench, bench

	def test_6_archive_records_the_archive_backup_and_deletes_older_ones(self):
		frappe.get_doc("Site", self.site).archive()
		frappe.db.commit()
		archived = self.wait(
			lambda: frappe.db.get_value("Site", {"name": ("like", f"{self.site}%"), "status": "Archived"}),
			f"Site {self.site} Archived",
			timeout=600,
		)
		archive_job = frappe.db.get_value("Agent Job", {"site": archived, "job_type": "Archive Site"})
		backup = frappe.db.get_value(
			"Site Backup", {"job": archive_job}, ["name", "minio_checksums"], as_dict=True
		)
		self.assertTrue(backup and backup.minio_checksums, "the archive backup is recorded with its objects")
		self.assertEqual(
			frappe.db.get_value("Site Backup", self.first_backup, "files_availability"), "Unavailable"
		)
		self.assertEqual(self.get_through_traefik(self.site).status_code, 404)

	def test_7_a_broken_site_can_be_archived(self):
		# New Site fails while the database server's MariaDB is down: Press calls the site Broken
		client = support.docker_client(self.endpoints)
		mariadb = client.containers.get(f"{self.spec.container_prefix}-mariadb")
		mariadb.stop()
		try:
			site = support.new_site(self.bench, self.group, self.spec, "broken")
			frappe.db.commit()
			self.wait(lambda: support.status_of("Site", site) == "Broken", f"Site {site} Broken")
		finally:
			mariadb.start()
		# the one failure this scenario makes on purpose
		type(self).expected_failures = frappe.get_all(
			"Agent Job", filters={"site": site, "status": "Failure"}, pluck="name"
		)
		frappe.get_doc("Site", site).archive(force=True)
		frappe.db.commit()
		self.wait(
			lambda: frappe.db.get_value("Site", {"name": ("like", f"{site}%"), "status": "Archived"}),
			f"Broken site {site} Archived",
			timeout=600,
		)

	def test_8_benches_are_archived(self):
		client = support.docker_client(self.endpoints)
		for bench in (self.old_bench, self.bench):
			frappe.get_doc("Bench", bench).archive()
			frappe.db.commit()
			self.wait(
				lambda bench=bench: support.status_of("Bench", bench) == "Archived", f"Bench {bench} Archived"
			)
			self.assertEqual(client.containers.list(all=True, filters={"label": f"press.bench={bench}"}), [])

	def test_9_nothing_failed_in_the_background(self):
		expected = getattr(self, "expected_failures", [])
		self.assertEqual(support.problems_since(self.started, self.servers, expected), [])
