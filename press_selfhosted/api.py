"""Operator REST API: ``/api/method/press_selfhosted.api.<name>``, System Manager only.

Thin over the glue in press_selfhosted/agent and the engine; every method checks permission first.
- ``agent_jobs(server, limit=20)``: the latest jobs of a container server from the job store, in the
  Agent's JSON shape (payloads are stored with their secrets masked);
- ``retention_plan()`` / ``apply_retention()``: the MinIO objects the backup retention would delete /
  deletes (Press's FIFO or grandfather-father-son policy);
- ``registry_cleanup_plan()`` / ``registry_cleanup()`` (POST): tags of the default Local Registry that no
  non-Archived Bench uses and that are no successful build awaiting its deploy, listed / deleted;
- ``verify_backup(site_backup)``: re-reads one backup's objects and checks size and SHA-256;
- ``run_restore_drill(site)``: enqueues a restore drill of the site's latest backup with files;
- ``site_usage(site)``: measures a site now (database, files, users) and applies its plan's limits;
- ``site_certificates(proxy_server)``: the sites a container proxy certifies by ACME, each with its
  certificate's expiry and what is wrong (no certificate after the grace period, renewal overdue);
- ``certify_root_domain(domain, renew=0)`` (POST): the root domain's wildcard from the platform's own CA,
  kept as Press's TLS Certificate and sent to the domain's container proxies;
- ``platform_ca_certificate()``: the platform CA's certificate (PEM), for clients to trust.
"""

from __future__ import annotations

import frappe

from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.engine.validation import validate_limit

MAX_JOBS = 200


def _only_operators() -> None:
	frappe.only_for("System Manager")


def _call(function, *args, **kwargs):
	"""Engine validation errors become Frappe's validation message (field, value, rule, fix)."""
	try:
		return function(*args, **kwargs)
	except ValidationError as error:
		frappe.throw(str(error), title="press_selfhosted")


@frappe.whitelist()
def agent_jobs(server: str, limit: int = 20) -> list[dict]:
	"""The latest agent jobs of a container server, newest first."""
	_only_operators()
	from press_selfhosted.glue import runtime

	jobs = runtime.job_store().latest(server, _call(validate_limit, limit, "limit", MAX_JOBS))
	return [{**job.as_agent(), "job_type": job.job_type} for job in jobs]


@frappe.whitelist()
def retention_plan() -> list[str]:
	"""Object keys the retention would delete now (nothing is deleted)."""
	_only_operators()
	from press_selfhosted.glue.backups import apply_retention as retention

	return retention(dry_run=True)


@frappe.whitelist(methods=["POST"])
def apply_retention() -> list[str]:
	"""Deletes the expired backups' objects and marks those Site Backups Unavailable."""
	_only_operators()
	from press_selfhosted.glue.backups import apply_retention as retention

	return retention(dry_run=False)


@frappe.whitelist()
def registry_cleanup_plan() -> dict:
	"""The tags of the default Local Registry that :func:`registry_cleanup` would delete (nothing is deleted)."""
	_only_operators()
	return _registry_cleanup(dry_run=True)


@frappe.whitelist(methods=["POST"])
def registry_cleanup() -> dict:
	"""Deletes the tags of the default Local Registry's repositories (those of Deploy Candidate Builds)
	that no Bench but an Archived one uses. Tags sharing a digest with a used tag are kept."""
	_only_operators()
	return _registry_cleanup(dry_run=False)


def _registry_cleanup(dry_run: bool) -> dict:
	from press_selfhosted.engine.policies.registry_cleanup import (
		cleanup_summary,
		delete_unreferenced_tags,
		images_to_keep,
		tags_by_repository,
	)
	from press_selfhosted.glue.registry import LOCAL_REGISTRY
	from press_selfhosted.record_rules import infrastructure

	name = frappe.db.get_value(LOCAL_REGISTRY, {"is_default": 1})
	if not name:
		frappe.throw("No default Local Registry: tick Default on the Local Registry to clean")
	doc = frappe.get_doc(LOCAL_REGISTRY, name)
	target = infrastructure.registry_target(doc, doc.get_password("password", raise_exception=False))
	host = infrastructure.image_host(target)
	# Press records a build's image on its Deploy Candidate Build
	pushed = tags_by_repository(host, frappe.get_all("Deploy Candidate Build", pluck="docker_image"))
	built = frappe.get_all("Deploy Candidate Build", filters={"status": "Success"}, pluck="docker_image")
	benches = [(b.docker_image, b.status) for b in frappe.get_all("Bench", fields=["docker_image", "status"])]
	# a build not yet deployed is kept: its deploy would pull it next
	used = tags_by_repository(host, images_to_keep(built, benches))
	reports = [
		delete_unreferenced_tags(target, repository, used.get(repository, set()), dry_run=dry_run)
		for repository in sorted(pushed)
	]
	return cleanup_summary(reports)


@frappe.whitelist()
def verify_backup(site_backup: str) -> dict:
	"""Re-reads the MinIO objects of one Site Backup; a failure marks it Unavailable."""
	_only_operators()
	from press_selfhosted.glue import backups

	if not frappe.db.exists("Site Backup", site_backup):
		frappe.throw(f"Site Backup {site_backup} does not exist")
	report = backups.recheck_backups(names=[site_backup])
	if not report:
		frappe.throw(
			f"Site Backup {site_backup} is not a successful backup with files in MinIO (no checksums)"
		)
	return report[0]


@frappe.whitelist(methods=["POST"])
def run_restore_drill(site: str) -> dict:
	"""Enqueues a restore drill of ``site``; the result lands on the Site (Last Restore Drill Result)."""
	_only_operators()
	if not frappe.db.exists("Site", site):
		frappe.throw(f"site: no Site named {site!r}", frappe.DoesNotExistError)
	frappe.has_permission("Site", "write", doc=site, throw=True)
	job = frappe.enqueue(
		"press_selfhosted.glue.backups.run_restore_drills",
		queue="long",
		job_id=f"press_selfhosted_restore_drill:{site}",
		deduplicate=True,
		site_name=site,
	)
	return {"site": site, "enqueued": bool(job)}


@frappe.whitelist(methods=["POST"])
def site_usage(site: str) -> dict:
	"""Measures ``site`` now, records its usage and applies its plan's limits; returns the decision."""
	_only_operators()
	from press_selfhosted.glue.usage import check_site

	if not frappe.db.exists("Site", site):
		frappe.throw(f"site: no Site named {site!r}", frappe.DoesNotExistError)
	return check_site(site).as_dict()


@frappe.whitelist()
def site_certificates(proxy_server: str) -> list[dict]:
	"""The ACME certificates Traefik holds for the sites of a container Proxy Server, and their problems."""
	_only_operators()
	from press_selfhosted.glue.certificates import site_certificates as report

	return report(proxy_server)


@frappe.whitelist(methods=["POST"])
def setup_container_server(doctype: str, name: str) -> str:
	"""Asks for the Setup Container Server job of a container Server, Proxy Server or Database Server;
	returns Press's Agent Job (its steps and output show there). The server turns Active when it succeeds."""
	_only_operators()
	from press_selfhosted.glue import servers

	if doctype not in servers.SERVER_DOCTYPES:
		frappe.throw(f"doctype: {doctype!r} is not one of {', '.join(servers.SERVER_DOCTYPES)}")
	doc = frappe.get_doc(doctype, name)
	doc.check_permission("write")
	return servers.setup(doc)


@frappe.whitelist(methods=["POST"])
def certify_root_domain(domain: str, renew: int = 0) -> dict:
	"""The root domain's certificate from the platform's own CA (issued when missing or due): the TLS
	Certificate's name, whether one was issued, and the Agent Jobs that send it to the proxies."""
	_only_operators()
	from press_selfhosted.glue.platform_certificates import certify_root_domain as certify

	return _call(certify, domain, renew=bool(int(renew)))


@frappe.whitelist()
def platform_ca_certificate() -> str:
	"""The platform CA's certificate (PEM), once ``certify_root_domain`` has made the CA."""
	_only_operators()
	from press_selfhosted.press_selfhosted.doctype.platform_certificate_authority.platform_certificate_authority import (
		ca_certificate,
	)

	return ca_certificate()
