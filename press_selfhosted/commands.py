"""Bench commands: ``bench --site S press-selfhosted set-up-cluster … | use-registry … | use-storage … |
certify-root-domain DOMAIN [--renew] | platform-ca-certificate | sweep | run-job ID |
retention [--dry-run] | registry-cleanup [--dry-run] | verify-backups | restore-drill SITE | jobs SERVER``.

They apply the transport swap explicitly: bench commands run neither ``before_request`` nor ``before_job``.
"""

from __future__ import annotations

import click


@click.group("press-selfhosted")
def press_selfhosted():
	"""press_selfhosted's in-process agent."""


def _connect(context):
	import frappe

	frappe.init(site=context.sites[0])
	frappe.connect()
	from press_selfhosted.glue.runtime import apply_swap

	apply_swap()


@press_selfhosted.command("set-up-cluster")
@click.option("--cluster", required=True, help="The Press Cluster to make or use, e.g. local.")
@click.option("--domain", required=True, help="The root domain sites are named under, e.g. platform.local.")
@click.option("--docker-socket", required=True, help="Where the host's Docker Engine answers.")
@click.option("--private-ip", required=True, help="The host's address on its internal network.")
@click.option("--container-prefix", help="Starts every container of the cluster [default: the cluster].")
@click.option("--ram", type=int, default=4096, show_default=True, help="MiB Press plans benches against.")
@click.option("--platform", default="x86_64", show_default=True, help="Of the host: x86_64 or arm64.")
@click.option("--timeout", type=int, default=600, show_default=True, help="Seconds to wait for Active.")
@click.pass_obj
def set_up_cluster_command(
	context, cluster, domain, docker_socket, private_ip, container_prefix, ram, platform, timeout
):
	"""Register one Docker host as an all-in-one cluster (app, database and proxy servers) and set its
	servers up; waits until they are Active. A second run changes nothing."""
	import frappe

	from press_selfhosted.engine.errors import ValidationError
	from press_selfhosted.glue import cluster as all_in_one

	_connect(context)
	spec = all_in_one.AllInOne(
		cluster=cluster,
		domain=domain,
		docker_socket=docker_socket,
		container_prefix=container_prefix or cluster,
		private_ip=private_ip,
		ram=ram,
		platform=platform,
	)
	try:
		names = _checked(lambda: all_in_one.register(spec))
	except ValidationError as error:
		raise click.ClickException(str(error)) from None
	frappe.db.commit()
	for name, job in all_in_one.set_up(names).items():
		click.echo(f"{name}: {'setting up (Agent Job ' + job + ')' if job else 'Active already'}")
	frappe.db.commit()
	statuses = _wait_until_active(names, timeout)
	if set(statuses.values()) != {"Active"}:
		waiting = ", ".join(f"{name} {status}" for name, status in statuses.items() if status != "Active")
		raise click.ClickException(
			f"{waiting} (waited up to {timeout} s). The server's Agent Jobs name the failing step (bench "
			f"--site {context.sites[0]} press-selfhosted jobs SERVER): fix it, then run this command again."
		)
	click.echo(f"cluster {cluster} is Active: create sites under {domain} on {spec.server_name('Server')}")


def _wait_until_active(names: dict[str, str], timeout: int) -> dict[str, str]:
	"""Prints each server's status as it changes, until all are Active, one is Broken or time runs out;
	the last statuses."""
	import time

	import frappe

	shown: dict[str, str] = {}
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		frappe.db.rollback()  # a fresh snapshot: the workers commit the setup jobs' results
		for doctype, name in names.items():
			status = frappe.db.get_value(doctype, name, "status")
			if shown.get(name) != status:
				click.echo(f"{name}: {status}")
				shown[name] = status
		if "Broken" in shown.values() or set(shown.values()) == {"Active"}:
			return shown
		time.sleep(2)
	return shown


@press_selfhosted.command("use-registry")
@click.option(
	"--url", required=True, help="Where Docker Engines reach the registry, e.g. http://127.0.0.1:5000."
)
@click.option("--insecure", is_flag=True, help="Plain HTTP: a registry on loopback or a private network.")
@click.option(
	"--credentials-file",
	type=click.Path(exists=True, dir_okay=False),
	help="A file with the username on its first line and the password on its second.",
)
@click.option("--title", default="default", show_default=True, help="The Local Registry record's title.")
@click.pass_obj
def use_registry_command(context, url, insecure, credentials_file, title):
	"""Make (or update) the default Local Registry and check that it answers; Press's registry settings
	follow it."""
	username, password = _credentials(credentials_file)
	values = {"url": url, "insecure": int(insecure), "username": username, "password": password}
	_connect(context)
	doc = _save_default("Local Registry", title, values)
	_checked(doc.test_connection)
	_commit(dry_run=False)
	click.echo(f"Local Registry {doc.name}: {url} answers; it is the default")


@press_selfhosted.command("use-storage")
@click.option("--endpoint", required=True, help="The S3 endpoint (MinIO), e.g. http://127.0.0.1:9000.")
@click.option("--bucket", required=True, help="The bucket backups go to; made when missing.")
@click.option(
	"--credentials-file",
	required=True,
	type=click.Path(exists=True, dir_okay=False),
	help="A file with the access key on its first line and the secret key on its second.",
)
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--prefix", default="backups", show_default=True, help="Where in the bucket backups go.")
@click.option("--title", default="default", show_default=True, help="The Storage Configuration's title.")
@click.pass_obj
def use_storage_command(context, endpoint, bucket, credentials_file, region, prefix, title):
	"""Make (or update) the default Storage Configuration, its bucket made when missing; Press's Backup
	Bucket and offsite keys follow it."""
	access_key, secret_key = _credentials(credentials_file)
	values = {
		"endpoint_url": endpoint,
		"default_bucket": bucket,
		"region": region,
		"minio_prefix": prefix,
		"access_key": access_key,
		"secret_key": secret_key,
	}
	_connect(context)
	doc = _save_default("Storage Configuration", title, values)
	_checked(lambda: doc.test_connection(create_bucket=True))
	_commit(dry_run=False)
	click.echo(
		f"Storage Configuration {doc.name}: bucket {bucket} at {endpoint} is writable; it is the default"
	)


def _credentials(path: str | None) -> tuple[str, str]:
	"""Two lines of a file: secrets never travel in a command's arguments."""
	if not path:
		return "", ""
	from pathlib import Path

	lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
	if len(lines) != 2:
		raise click.BadParameter(
			f"{path} has {len(lines)} non-empty lines; write two: the name, then the secret."
		)
	return lines[0], lines[1]


def _save_default(doctype: str, title: str, values: dict):
	"""The record titled ``title``, made or updated with ``values`` and marked the default; committed by
	the caller once the record's connection check passed (a failed check changes nothing)."""
	import frappe

	name = frappe.db.get_value(doctype, {"title": title})
	doc = frappe.get_doc(doctype, name) if name else frappe.new_doc(doctype)
	doc.update({"title": title, "is_default": 1, **{k: v for k, v in values.items() if v or k == "insecure"}})
	_checked(doc.save)
	return doc


def _checked(action):
	"""Runs ``action``; a validation failure becomes the command's error, with the record's own message."""
	import frappe

	try:
		return action()
	except frappe.ValidationError as error:
		raise click.ClickException(frappe.utils.strip_html(str(error))) from None


@press_selfhosted.command("certify-root-domain")
@click.argument("domain")
@click.option("--renew", is_flag=True, help="Issue a new certificate even if the current one is not due.")
@click.pass_obj
def certify_root_domain_command(context, domain, renew):
	"""The root domain's wildcard from the platform's own CA (for hosts no ACME server reaches), kept as
	Press's TLS Certificate and sent to the domain's container proxies."""
	import frappe

	from press_selfhosted.glue.platform_certificates import certify_root_domain

	_connect(context)
	done = _checked(lambda: certify_root_domain(domain, renew=renew))
	frappe.db.commit()
	expires = frappe.db.get_value("TLS Certificate", done["certificate"], "expires_on")
	state = "issued" if done["issued"] else "current, not due for renewal"
	click.echo(f"TLS Certificate {done['certificate']}: {state}; expires {expires}")
	for job in done["jobs"]:
		click.echo(f"sent to the proxy by Agent Job {job}")


@press_selfhosted.command("platform-ca-certificate")
@click.pass_obj
def platform_ca_certificate_command(context):
	"""Print the platform CA's certificate (PEM), for the clients that must trust its certificates."""
	from press_selfhosted.press_selfhosted.doctype.platform_certificate_authority.platform_certificate_authority import (
		ca_certificate,
	)

	_connect(context)
	click.echo(_checked(ca_certificate), nl=False)


@press_selfhosted.command("sweep")
@click.pass_obj
def sweep_command(context):
	"""Re-enqueue agent jobs whose worker died."""
	from press_selfhosted.glue.runtime import sweep_jobs

	_connect(context)
	click.echo(f"re-enqueued: {sweep_jobs()}")


@press_selfhosted.command("run-job")
@click.argument("job_id", type=int)
@click.pass_obj
def run_job_command(context, job_id):
	"""Run (or resume) one agent job in this process."""
	from press_selfhosted.glue.runtime import run_job

	_connect(context)
	click.echo(run_job(job_id) or "held by another worker")


@press_selfhosted.command("retention")
@click.option("--dry-run", is_flag=True, help="List the objects that would be deleted; delete nothing.")
@click.pass_obj
def retention_command(context, dry_run):
	"""Apply the backup retention policy to the backups in MinIO."""
	from press_selfhosted.glue.backups import apply_retention

	_connect(context)
	keys = apply_retention(dry_run=dry_run)
	for key in keys:
		click.echo(key)
	click.echo(f"{'would delete' if dry_run else 'deleted'}: {len(keys)} object(s)")
	_commit(dry_run)


@press_selfhosted.command("registry-cleanup")
@click.option("--dry-run", is_flag=True, help="Report the unused tags; delete nothing.")
@click.pass_obj
def registry_cleanup_command(context, dry_run):
	"""Delete tags of the default Local Registry that no Bench but an Archived one uses."""
	from press_selfhosted.api import registry_cleanup, registry_cleanup_plan

	_connect(context)
	summary = registry_cleanup_plan() if dry_run else registry_cleanup()
	_commit(dry_run)
	for repository in summary["repositories"]:
		click.echo(repository["message"])


@press_selfhosted.command("verify-backups")
@click.option("--days", type=int, default=2, show_default=True, help="Backups of the last DAYS days.")
@click.pass_obj
def verify_backups_command(context, days):
	"""Re-read recent backups from MinIO and check sizes and checksums."""
	from press_selfhosted.glue.backups import recheck_backups

	_connect(context)
	report = recheck_backups(days=days)
	for row in report:
		click.echo(f"{row['backup']}: {'ok' if row['ok'] else 'FAILED ' + '; '.join(row['failed'])}")
	_commit(False)
	unverifiable = backups_without_checksums(days)
	if unverifiable:
		click.echo(
			f"{len(unverifiable)} successful backup(s) of the last {days} day(s) have no recorded checksums and "
			f"cannot be verified: {', '.join(unverifiable)}"
		)
	if not report and not unverifiable:
		click.echo(f"no backups of container sites in the last {days} day(s)")
	if unverifiable or not all(row["ok"] for row in report):
		raise SystemExit(1)


def backups_without_checksums(days: int) -> list[str]:
	import frappe

	since = frappe.utils.add_days(frappe.utils.now_datetime(), -days)
	return frappe.get_all(
		"Site Backup",
		filters={
			"status": "Success",
			"offsite": 1,
			"files_availability": "Available",
			"creation": (">", since),
			"minio_checksums": ("is", "not set"),
			"site": ("in", _container_sites() or [""]),
		},
		pluck="name",
	)


def _container_sites() -> list[str]:
	import frappe

	servers = frappe.get_all(
		"Server", filters={"container_prefix": ("is", "set"), "docker_socket": ("is", "set")}, pluck="name"
	)
	return frappe.get_all("Site", filters={"server": ("in", servers or [""])}, pluck="name")


@press_selfhosted.command("restore-drill")
@click.argument("site")
@click.pass_obj
def restore_drill_command(context, site):
	"""Restore SITE's latest backup into a throw-away site and compare it (runs here, now)."""
	import frappe

	from press_selfhosted.glue.backups import run_restore_drills

	_connect(context)
	run_restore_drills(site_name=site)
	click.echo(
		frappe.db.get_value("Site", site, "last_restore_drill_result") or "no backup with files to drill"
	)


@press_selfhosted.command("jobs")
@click.argument("server")
@click.option("--limit", type=int, default=20, show_default=True)
@click.pass_obj
def jobs_command(context, server, limit):
	"""The latest agent jobs of a container SERVER."""
	from press_selfhosted.api import agent_jobs

	_connect(context)
	for job in agent_jobs(server, limit=limit):
		click.echo(f"{job['id']:>6}  {job['status']:<8}  {job['job_type']}  {job.get('start') or ''}")


def _commit(dry_run: bool) -> None:
	import frappe

	if not dry_run:
		frappe.db.commit()


commands = [press_selfhosted]
