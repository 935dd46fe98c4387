"""Every typed error the engine raises, grouped by cause.

Every engine error carries a message written for the operator: what went wrong and what to change.
The Frappe layer shows ``str(error)`` as it is (``frappe.throw``), so a message never contains a
secret (keys, passwords, tokens).

This module is the bottom layer: it imports nothing of the engine, so every module can import from
it. A new error goes into the section of its cause, as a subclass of :class:`EngineError`, or of the
family its callers catch (``except TransferError`` also catches :class:`UnsafeVolumePath`); no other
module defines one (``tests/unit/test_boundary.py`` checks it).

Sections:

1. the base and the families (one per part of the platform, caught as a whole)
2. input refused: a value the operator, a tenant or Press's request gave
3. a service that does not answer: Docker, S3, the registry, the job store, DNS resolvers
4. a service that answers but refuses: credentials, TLS, a refused call, too old a version
5. something missing
6. something not running, not ready, unhealthy or full
7. something busy, in use or another's
8. integrity: bytes that are not the ones recorded
9. a command, statement or step that ran and failed
"""

from __future__ import annotations

from typing import Any, Protocol


class _DockerEndpoint(Protocol):
	"""What a Docker error names of ``engine.clients.docker_hosts.DockerHost`` (not imported: see above)."""

	@property
	def server(self) -> str: ...

	@property
	def socket(self) -> str: ...


class _CommandResult(Protocol):
	"""What :class:`CommandFailed` reads of ``engine.clients.docker_exec.CommandResult`` (not imported: see above)."""

	@property
	def command(self) -> str: ...

	@property
	def exit_code(self) -> int: ...

	@property
	def output(self) -> str: ...


# --- 1. the base and the families ------------------------------------------------------------------
# A family is raised as itself when no finer cause applies; its members are in the sections below.


class EngineError(Exception):
	"""Base of every error the engine raises on purpose; ``message`` is operator-facing."""

	def __init__(self, message: str):
		super().__init__(message)
		self.message = message

	def __str__(self) -> str:
		return self.message


class StorageError(EngineError):
	"""The S3 endpoint could not be used."""


class RegistryError(EngineError):
	"""The registry could not be used."""


class DomainDnsError(EngineError):
	"""A custom domain's DNS could not be shown to send its visitors to the cluster's proxy."""


class TransferError(EngineError):
	"""A file could not be copied between a container and S3."""


class DatabaseError(EngineError):
	"""The database server could not do what a job needed."""


class BenchError(EngineError):
	"""A bench could not be set up, changed or removed."""


class SiteError(EngineError):
	"""A site job could not do what Press asked."""


class BackupError(EngineError):
	"""A site backup could not be made or stored."""


class BuildError(EngineError):
	"""A build could not be done."""


class QueryFailed(EngineError):
	"""A direct query that cannot be answered; ``status_code`` is the HTTP answer Press gets."""

	def __init__(self, status_code: int, message: str):
		self.status_code = status_code
		super().__init__(message)


# --- 2. input refused -------------------------------------------------------------------------------


class ValidationError(EngineError):
	"""A value was refused: names the field, the bad value, the rule it breaks and how to fix it.

	``show_value=False`` keeps the value out of the message (for keys and passwords).
	"""

	def __init__(self, field: str, value: object, rule: str, fix: str, *, show_value: bool = True):
		self.field = field
		self.value = value
		self.rule = rule
		self.fix = fix
		shown = repr(value) if show_value else "(hidden)"
		super().__init__(f"{field}: {shown} is not accepted: {rule}. Fix: {fix}")


class BuildRequestError(BuildError):
	"""Press's ``builder/build`` request lacks something or holds a value the builder cannot use."""


class ValidationFailed(BuildError):
	"""The build context breaks a rule; ``report`` is the Agent's validation report for Press."""

	def __init__(self, message: str, app: str | None = None, **details: Any):
		self.report = {
			"message": message,
			"app": app,
			"actual": details.get("actual"),
			"expected": details.get("expected"),
			"package": details.get("package"),
			"invalid_releases": details.get("invalid_releases"),
		}
		shown = ", ".join(
			f"{key}: {value}" for key, value in self.report.items() if value and key != "message"
		)
		super().__init__(f"{message}" + (f" ({shown})" if shown else "") + details.get("fix", ""))


class UnsafeName(DatabaseError):
	"""A database name that is not one the engine makes: it never reaches SQL."""


class UnsafeVolumePath(TransferError):
	"""A file to read from a volume lies behind a symbolic link, or is not a regular file."""


# --- 3. a service that does not answer --------------------------------------------------------------


class DockerUnreachable(EngineError):
	"""The Docker Engine of a server did not answer (socket missing, daemon down, timeout)."""

	def __init__(self, host: _DockerEndpoint, action: str, detail: str):
		self.host = host
		self.action = action
		super().__init__(
			f"Docker on server {host.server} ({host.socket}) did not answer while {action}: {detail}. "
			"Check that dockerd runs there and that this machine can reach that socket "
			"(the server's docker_socket field)."
		)


class StorageUnreachable(StorageError):
	"""No answer from the endpoint within the connect timeout (refused, no route, DNS, timeout)."""


class RegistryUnreachable(RegistryError):
	"""No answer from the registry within the timeout."""


class JobStoreUnavailable(EngineError):
	"""The job store's database could not be reached, or the connection ended.

	The one error the agent router answers 503 (Press delivers the request again later)."""


class LocksLost(JobStoreUnavailable):
	"""The connection that held this worker's named locks ended: the locks are gone with it."""


class DnsUnanswered(DomainDnsError):
	"""The resolvers gave no answer (timeout, refused, SERVFAIL): nothing is known of the domain."""

	def __init__(self, name: str, nameservers: str, cause: Exception):
		self.name = name
		super().__init__(
			f"DNS: no answer for {name} from {nameservers} ({type(cause).__name__}). Fix: check that these "
			"resolvers answer from the Press host, or list reachable ones in the site config key "
			'press_selfhosted_dns_nameservers (e.g. "10.0.0.2" or "10.0.0.2:5353").'
		)


# --- 4. a service that answers but refuses ----------------------------------------------------------


class DockerOperationFailed(EngineError):
	"""Docker answered with an error (bad request, conflict, missing object, daemon error)."""

	def __init__(self, host: _DockerEndpoint, action: str, detail: str):
		self.host = host
		self.action = action
		super().__init__(f"Docker on server {host.server} refused {action}: {detail}")


class DockerTooOld(EngineError):
	"""A server's Docker Engine speaks an older API than the engine needs."""


class StorageAuthError(StorageError):
	"""The endpoint answered but refused the keys, or the keys lack a permission."""


class StorageTLSError(StorageError):
	"""The TLS handshake or certificate verification failed."""


class RegistryAuthError(RegistryError):
	"""The registry refused the credentials, or needs credentials that were not given."""


class PushDenied(RegistryAuthError):
	"""The registry refused the push (credentials or permissions)."""


class RegistryTLSError(RegistryError):
	"""The TLS handshake or certificate verification failed."""


class RegistryLoginFailed(BenchError):
	"""The registry refused a container server's login before it pulled a bench image."""


# --- 5. something missing ---------------------------------------------------------------------------


class StorageBucketMissing(StorageError):
	"""The bucket does not exist on the endpoint."""


class ObjectMissing(TransferError):
	"""The object a backup recorded is not in the bucket (or the URL answers no file)."""


class BenchImageMissing(BenchError):
	"""A bench's image could not be pulled from the registry."""


class DatabaseContainerMissing(DatabaseError):
	"""No MariaDB container serves the database server."""


class SiteNotInBench(EngineError):
	"""A site has no site_config.json in its bench, or no database recorded for it."""


class SiteNotOnProxy(EngineError):
	def __init__(self, server: str, site: str):
		super().__init__(
			f"Site {site} has no route on proxy server {server}. Run 'Add Site to Upstream' for it first "
			"(Press does so when the site is created)."
		)


class JobTypesUnavailable(EngineError):
	"""Press's Agent Job Type fixture, which names every job's steps, was not found."""


# --- 6. something not running, not ready, unhealthy or full -----------------------------------------


class ContainerNotRunning(EngineError):
	def __init__(self, container: str, command: str, detail: str):
		self.container = container
		super().__init__(
			f"`{command}` could not start: container {container} is not running ({detail}). "
			"Fix: start it (Press: Bench Restart for a bench), then retry the job."
		)


class DatabaseNotReady(DatabaseError):
	"""MariaDB stopped, refused the root password, or did not answer in time."""


class ProxyNotReady(EngineError):
	def __init__(self, server: str, container: str, status: str, logs: str):
		super().__init__(
			f"The proxy server {server} (container {container}, {status}) does not answer. "
			f"Fix: look at its log, below, then set the server up again. Last log lines:\n{logs}"
		)


class RoutesNotLoaded(EngineError):
	def __init__(self, server: str, wrong: dict, containers: str):
		shown = ", ".join(f"{name}: {seen or 'absent'}" for name, seen in sorted(wrong.items()))
		super().__init__(
			f"The proxy server {server} does not serve the routes written for this job ({shown}). "
			f"Check the log of {containers} (docker logs) for a configuration error."
		)


class BenchUnhealthy(BenchError):
	"""A bench did not answer its health check in time."""


class DomainNotPointingHere(DomainDnsError):
	"""The domain resolves elsewhere, partly elsewhere, or not at all."""

	def __init__(
		self,
		domain: str,
		*,
		site: str,
		cname: str | None,
		found: tuple[str, ...],
		wrong: tuple[str, ...],
		expected: tuple[str, ...],
	):
		self.domain = domain
		self.found = found
		self.wrong = wrong
		if not found and not cname:
			seen = "has no CNAME, A or AAAA record"
		elif wrong and len(wrong) < len(found):
			seen = f"resolves partly elsewhere: {', '.join(wrong)} is not this platform's proxy"
		else:
			via = f"is a CNAME of {cname} and " if cname else ""
			seen = f"{via}resolves to {', '.join(found) or 'nothing'}"
		where = f" or an A/AAAA record to {', '.join(expected)}" if expected else ""
		super().__init__(
			f"Domain {domain} {seen}. Fix: at your DNS provider, add a CNAME record {domain} → {site}{where}, "
			"remove any other A/AAAA/CNAME record of the name, and try again once it has propagated."
		)


class BuildHostDiskFull(BuildError):
	"""The build server's Docker data root ran out of space."""

	def __init__(self, server: str, where: str, detail: str):
		self.server = server
		super().__init__(
			f"The build server {server} ran out of disk space ({where}): {detail}. "
			"Fix: free space in its Docker data root (remove unused images and build cache: "
			"`docker image prune`, `docker builder prune`) or grow that disk, then deploy again."
		)


# --- 7. something busy, in use or another's ---------------------------------------------------------


class BenchBusy(EngineError):
	"""Work outside a job (the restore drill) waited in vain for a bench a job holds."""


class SiteBusy(SiteError):
	"""A site still had queued background jobs when its maintenance window ran out."""


class BenchHasSites(BenchError):
	"""A bench to archive still has sites (Press keeps the bench Active on its exact message)."""


class HostTaken(EngineError):
	def __init__(self, server: str, host: str, owner: str, site: str):
		super().__init__(
			f"{host} already routes to site {owner} on proxy server {server}, so it cannot route to {site}. "
			f"Fix: remove the domain from {owner} first (Press: remove the Site Domain), then add it again."
		)


class NotOwned(EngineError):
	"""A container or volume in the way of a destructive step carries no label saying it is ours."""


class RouteStateUnreadable(EngineError):
	"""A route file on the proxy does not carry the header this engine writes."""


class LeaseLost(EngineError):
	"""The job's lease is no longer this worker's: it must not write or run anything more of it."""


# --- 8. integrity -----------------------------------------------------------------------------------


class ChecksumMismatch(TransferError):
	"""The bytes read back do not have the size or checksum recorded for them."""


class UnknownChecksum(TransferError):
	"""A recorded checksum is in neither form of ``engine.clients.transfer.Checksum``."""


class NotTheSameFile(TransferError):
	"""The file under the mountpoint on this machine is not the one the container sees."""


# --- 9. a command, statement or step that ran and failed --------------------------------------------


class CommandFailed(EngineError):
	def __init__(self, container: str, result: _CommandResult):
		self.container = container
		self.result = result
		tail = "\n".join(result.output.splitlines()[-20:])
		super().__init__(
			f"`{result.command}` exited with code {result.exit_code} in container {container}:\n{tail}"
		)


class CommandOutputLost(EngineError):
	"""Docker cut a reading command's output every time it was asked (its exec stream ended early)."""

	def __init__(self, container: str, result: _CommandResult):
		self.container = container
		self.result = result
		super().__init__(
			f"`{result.command}` in container {container} ran (exit code {result.exit_code}) but Docker cut "
			"its output each time it was run (its exec stream ended before the output: docker-py#2042), so "
			"what it read is unknown. Fix: retry the job; if it keeps happening, look at dockerd's load and logs."
		)


class SQLFailed(DatabaseError):
	"""MariaDB refused a statement, or the SQL could not be copied into its container."""


class JobStoreError(EngineError):
	"""The job store's database refused a statement (not an outage: :class:`JobStoreUnavailable`)."""


class CloneFailed(BuildError):
	"""An app could not be fetched at its commit. The message starts as Press's clone parser expects."""

	def __init__(self, app: str, detail: str):
		self.app = app
		super().__init__(f"Failed to clone repository for {app} - {detail}")


class BuildStageFailed(BuildError):
	"""A Dockerfile step failed: names its ``#stage`` marker, exit code and last output lines."""


class PushFailed(RegistryError):
	"""The push did not complete for another reason."""


class ProxyNotDone(SiteError):
	"""The proxy's Remove Site from Upstream job ended in failure, so the site may still be routed."""
