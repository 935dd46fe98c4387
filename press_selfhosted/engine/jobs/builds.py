"""Bench image builds on a container build server (Press's ``Run Remote Builder``, POST ``builder/build``).

Press (``DeployCandidateBuild.send_build_instructions_and_add_build_steps``) sends its rendered
Dockerfile (base64, every ``RUN`` ending with a `` `#stage-<stage>-<step>` `` marker) and one clone
instruction per app (``app, url, hash, source, release, branch``), with ``image_repository``,
``image_tag``, ``registry``, ``no_cache``, ``no_push``, ``build_token``, ``platform`` (arm64 only),
``deploy_candidate_params`` (redis cache size, worker layout, dependency versions) and
``deploy_candidate_build``. The builder answers as the Agent does:

- Clone Repositories: each app fetched at its commit into a clone cache (``<workdir>/clones``; a
  private source's URL carries a token, which the job store masks: the step reads it back as a secret
  when it runs), then the build context is laid out (apps, Dockerfile, apps.txt, the configuration
  files the Dockerfile copies, the apt packages apps declare). Step data: one entry per app,
  ``git clone <app>`` (or ``git clone <app> CACHED``) and git's output; a failure is
  ``Failed to clone repository for <app> - …``, which Press turns into that app's failed clone step.
- Run Validations: Python syntax, dependency files, Python/Node/Frappe version requirements, the
  image name and the registry. Step data is ``{}`` on success; a failure is the Agent's report
  (``message``, ``app``, ``actual``, ``expected``, ``package``, ``invalid_releases``).
- Build Image: BuildKit, through the Debian ``docker`` CLI against the build server's Docker Engine
  (docker-py cannot drive BuildKit; ``RUN --mount`` needs it). The raw ``--progress=plain`` lines are
  Press's build output: job data ``output`` = JSON ``{"build": [lines], "push": [...]}``, published
  while it builds, so the stages live on the desk. A failing stage ends the job as the Agent does:
  ``build_failed`` in the job data, the Build Image step Failure, nothing pushed, the context
  cleaned, the job Success (Press ignores a failed job's build output; it reads the failure from it).
- Push Docker Image: docker-py's push with the Local Registry's credentials (read at run time), the
  registry checked before each of up to three attempts, and the digest the registry then serves
  compared with the pushed one.
- Cleanup Context: the build directory goes; the clone cache stays for the next build.

Any other failure fails the job with JSON still in ``output`` (``Handler.initial_data``), so Press's
callback can always parse it.
"""

from __future__ import annotations

import ast
import base64
import binascii
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import semantic_version

try:
	import tomllib
except ImportError:  # Python 3.10
	import tomli as tomllib  # type: ignore[no-redef]

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients.docker_hosts import DockerHost, docker_errors
from press_selfhosted.engine.clients.registry import RegistryTarget, test_connection
from press_selfhosted.engine.errors import (
	BuildError,
	BuildHostDiskFull,
	BuildRequestError,
	BuildStageFailed,
	CloneFailed,
	EngineError,
	PushDenied,
	PushFailed,
	RegistryTLSError,
	RegistryUnreachable,
	ValidationFailed,
)
from press_selfhosted.engine.jobs.handlers import EndJob, Handler, StepContext, handler
from press_selfhosted.engine.masking import MASK
from press_selfhosted.engine.policies.registry_cleanup import manifest_digest

STEPS = ("Clone Repositories", "Run Validations", "Build Image", "Push Docker Image", "Cleanup Context")
STAGE_MARKER = re.compile(r"`#stage-([^`]+)`")
# Press's Dockerfile: the apt packages apps declare go in just before this line (as the Agent does)
APT_ANCHOR = "RUN test -f /usr/bin/mariadb-dump || ln -s /usr/bin/mysqldump /usr/bin/mariadb-dump"
_SYNTAX_DIRECTIVE = re.compile(r"\A(?:#[^\n]*\n)*?\s*#\s*syntax\s*=[^\n]*\n", re.IGNORECASE)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,139}$")
_APT_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.:=~-]{0,127}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_EXIT_CODE = re.compile(r"exit code: (\d+)")
TAIL_LINES = 20
PUBLISH_INTERVAL = 1.0
PLATFORMS = {
	"x86_64": "linux/amd64",
	"amd64": "linux/amd64",
	"linux/amd64": "linux/amd64",
	"arm64": "linux/arm64",
	"aarch64": "linux/arm64",
	"linux/arm64": "linux/arm64",
}
REDIS_CACHE_PORT = 13000
REDIS_QUEUE_PORT = 11000


# --- the request ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppClone:
	"""One of Press's ``clone_instructions``."""

	app: str
	url: str
	hash: str
	source: str
	release: str
	branch: str


@dataclass(frozen=True)
class BuildRequest:
	"""Press's ``builder/build`` payload, checked (``deploy_candidate_build.py``)."""

	build: str  # the Deploy Candidate Build's name (also the image tag)
	group: str
	repository: str
	tag: str
	registry_url: str
	username: str
	no_cache: bool
	no_push: bool
	platform: str  # "linux/amd64" | "linux/arm64"
	dockerfile: str
	clones: tuple[AppClone, ...]
	params: dict[str, Any]
	build_token: str | None  # None: none sent; MASK: sent and kept by Press (read as a secret)

	@property
	def image(self) -> str:
		return f"{self.repository}:{self.tag}"

	@property
	def dependencies(self) -> dict[str, str]:
		return {str(k): str(v) for k, v in (self.params.get("dependencies") or {}).items()}

	@classmethod
	def from_payload(cls, payload: dict[str, Any]) -> BuildRequest:
		if payload.get("filename") and not payload.get("dockerfile"):
			raise BuildRequestError(
				"This builder request names an uploaded build context (filename): press_selfhosted builds "
				"from Press's clone instructions and Dockerfile, as the Agent does since Press stopped "
				"uploading contexts. Fix: update Press, or send dockerfile and clone_instructions."
			)
		build = str(payload.get("deploy_candidate_build") or payload.get("build_name") or "")
		group = str(payload.get("group") or "")
		for key, value in (("deploy_candidate_build", build), ("group", group)):
			if not _SAFE_NAME.match(value):
				raise BuildRequestError(
					f"builder/build: {key} {value!r} is not a Press document name (letters, digits, '.', '_', '-')."
				)
		encoded = payload.get("dockerfile")
		try:
			dockerfile = base64.b64decode(str(encoded or ""), validate=True).decode()
		except (binascii.Error, UnicodeDecodeError) as error:
			raise BuildRequestError(
				f"builder/build: dockerfile is not base64 of a UTF-8 text ({error})."
			) from None
		if not dockerfile.strip():
			raise BuildRequestError(
				"builder/build: dockerfile is empty; Press renders it from press/docker/Dockerfile."
			)
		instructions = payload.get("clone_instructions")
		if not isinstance(instructions, list) or not instructions:
			raise BuildRequestError(
				"builder/build: clone_instructions must list the apps to build (frappe first)."
			)
		clones = tuple(_clone_of(i, item) for i, item in enumerate(instructions))
		registry = payload.get("registry") or {}
		platform = str(payload.get("platform") or "x86_64")
		if platform not in PLATFORMS:
			raise BuildRequestError(
				f"builder/build: platform {platform!r} is not one the builder knows (x86_64, arm64)."
			)
		token = payload.get("build_token")
		params = payload.get("deploy_candidate_params") or {}
		return cls(
			build=build,
			group=group,
			repository=str(payload.get("image_repository") or ""),
			tag=str(payload.get("image_tag") or ""),
			registry_url=str(registry.get("url") or ""),
			username=str(registry.get("username") or ""),
			no_cache=bool(payload.get("no_cache")),
			no_push=bool(payload.get("no_push")),
			platform=PLATFORMS[platform],
			dockerfile=dockerfile,
			clones=clones,
			params=params if isinstance(params, dict) else {},
			build_token=str(token) if token else None,
		)


def _clone_of(index: int, item: Any) -> AppClone:
	if not isinstance(item, dict):
		raise BuildRequestError(f"builder/build: clone_instructions[{index}] is not an object.")
	values = {key: str(item.get(key) or "") for key in ("app", "url", "hash", "source", "release", "branch")}
	for key in ("app", "source"):
		if not _SAFE_NAME.match(values[key]):
			raise BuildRequestError(
				f"builder/build: clone_instructions[{index}].{key} {values[key]!r} is not a name "
				"(letters, digits, '.', '_', '-')."
			)
	if not _COMMIT.match(values["hash"]):
		raise BuildRequestError(
			f"builder/build: clone_instructions[{index}].hash {values['hash']!r} of app {values['app']} is not "
			"a 40-character commit hash. Fix: the App Release's hash."
		)
	if not values["url"]:
		raise BuildRequestError(f"builder/build: clone_instructions[{index}] has no url for {values['app']}.")
	return AppClone(**values)


# --- settings and paths -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BuilderSettings:
	"""Where the builder works and how it reaches registries and the build server's BuildKit.

	``workdir`` holds the clone cache (``clones/``) and build directories (``builds/<group>/<build>``)
	on the machine that runs the jobs. ``registry_target(url)`` answers the Local Registry for ``url``
	without its password (namespace, TLS verification, CA bundle); the password comes from
	``ctx.secret("registry_password")``. ``docker_cli`` is a docker CLI with BuildKit (Debian's
	``docker.io`` has it built in; no buildx needed). A ``# syntax=`` line in Press's Dockerfile names
	a frontend image on Docker Hub; the daemon's built-in frontend runs Press's Dockerfile
	(``RUN --mount`` included), so the line is dropped unless ``keep_syntax_directive``."""

	workdir: str | os.PathLike
	registry_target: Callable[[str], RegistryTarget] = RegistryTarget
	docker_cli: str = "/usr/bin/docker"
	git: str = "git"
	git_timeout: float = 900.0
	keep_syntax_directive: bool = False
	push_attempts: int = 3
	push_retry_wait: float = 60.0  # the registry gets this long to recover between attempts

	@property
	def root(self) -> Path:
		return Path(self.workdir)

	@property
	def clones(self) -> Path:
		return self.root / "clones"

	def build_dir(self, request: BuildRequest) -> Path:
		return self.root / "builds" / request.group / request.build

	def context_tar(self, request: BuildRequest) -> Path:
		return self.root / "builds" / request.group / f"{request.build}.tar"

	def private(self, request: BuildRequest) -> Path:
		"""Files that must not be in the build context (the build token)."""
		return self.root / "private" / request.build


# --- clones -----------------------------------------------------------------------------------------


def _redactor(url: str) -> Callable[[str], str]:
	secrets = [url]
	credentials = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:([^/@\s]+)@", url)
	if credentials:
		secrets.append(credentials[1])

	def redact(text: str) -> str:
		for secret in secrets:
			text = text.replace(secret, MASK)
		return text

	return redact


def _git(settings: BuilderSettings, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
	environment = {
		**os.environ,
		"GIT_TERMINAL_PROMPT": "0",  # a missing or wrong token fails at once instead of waiting for input
		"GIT_ASKPASS": "/bin/false",
		"SSH_ASKPASS": "/bin/false",
		"GIT_CONFIG_NOSYSTEM": "1",
	}
	return subprocess.run(
		[settings.git, "-c", "credential.helper=", "-c", "advice.detachedHead=false", *args],
		cwd=cwd,
		env=environment,
		stdout=subprocess.PIPE,
		stderr=subprocess.STDOUT,
		text=True,
		timeout=settings.git_timeout,
		check=False,
	)


def clone_app(settings: BuilderSettings, clone: AppClone, url: str) -> str:
	"""The app at its commit in the clone cache; returns Press's clone output for it.

	A cached clone is complete by construction (made in a scratch folder, renamed into place), so a
	crash mid-clone never leaves a half clone that looks cached. The URL (with any token) is used for
	the fetch only: no remote is configured, so no token is written to disk."""
	target = settings.clones / clone.source / clone.hash
	if (target / ".git").is_dir():
		os.utime(target)  # the cache's pruning keeps what builds still use
		return f"git clone {clone.app} CACHED\n"
	redact = _redactor(url)
	scratch = settings.clones / ".partial" / f"{clone.source}-{clone.hash[:10]}-{uuid.uuid4().hex[:8]}"
	scratch.mkdir(parents=True)
	output = [f"git clone {clone.app}\n"]
	try:
		for args in (
			["init", "--quiet"],
			["fetch", "--depth", "1", "--no-tags", url, clone.hash],
			["checkout", "--quiet", "-B", clone.branch or "main", clone.hash],
			["rev-parse", "HEAD"],
		):
			shown = " ".join(redact(arg) for arg in args)
			try:
				result = _git(settings, args, scratch)
			except subprocess.TimeoutExpired:
				raise CloneFailed(
					clone.app, f"git {shown} took more than {settings.git_timeout:.0f} s"
				) from None
			except OSError as error:
				raise CloneFailed(clone.app, f"git could not run ({error}). Fix: install git") from None
			text = redact(result.stdout)
			output.append(f"$ git {shown}\n{text}")
			if result.returncode != 0:
				raise CloneFailed(
					clone.app,
					f"git {shown} failed (exit code {result.returncode}):\n{text.strip()}\n"
					f"Fix: check that App Source {clone.source} points at a reachable repository "
					f"(a private one needs its token) that holds commit {clone.hash}.",
				)
		if result.stdout.strip() != clone.hash:
			raise CloneFailed(clone.app, f"HEAD is {result.stdout.strip()}, not commit {clone.hash}")
		target.parent.mkdir(parents=True, exist_ok=True)
		try:
			scratch.rename(target)
		except OSError:
			if not (target / ".git").is_dir():  # another build put the same commit there meanwhile
				raise
	finally:
		shutil.rmtree(scratch, ignore_errors=True)
	return "".join(output)


def prune_workdir(
	settings: BuilderSettings, clone_age: float, build_age: float, now: float | None = None
) -> list[str]:
	"""Removes cached clones no build used for ``clone_age`` seconds and build directories (of builds
	whose worker died and never came back) older than ``build_age``; returns what it removed."""
	now = time.time() if now is None else now
	removed = []
	candidates: list[tuple[Path, float]] = []
	if settings.clones.is_dir():
		candidates += [
			(p, clone_age)
			for source in settings.clones.iterdir()
			if source.is_dir()
			for p in source.iterdir()
		]
	builds_root = settings.root / "builds"
	if builds_root.is_dir():
		candidates += [
			(p, build_age) for group in builds_root.iterdir() if group.is_dir() for p in group.iterdir()
		]
	for path, age in candidates:
		if path.stat().st_mtime < now - age:
			if path.is_dir():
				shutil.rmtree(path, ignore_errors=True)
			else:
				path.unlink(missing_ok=True)
			removed.append(str(path.relative_to(settings.root)))
	return sorted(removed)


# --- the build context ------------------------------------------------------------------------------


def _pyproject(app: str, repo: Path) -> dict[str, Any] | None:
	found = repo / "pyproject.toml"
	if not found.is_file():
		nested = sorted(repo.glob("*/pyproject.toml"))
		found = nested[0] if nested else found
	if not found.is_file():
		return None
	try:
		return tomllib.loads(found.read_text())
	except (tomllib.TOMLDecodeError, UnicodeDecodeError):
		# the first words are what Press's deploy notifications match
		raise ValidationFailed(
			"App has invalid pyproject.toml file", app, fix=". Fix: correct the app's pyproject.toml."
		) from None


def _package_jsons(app: str, repo: Path) -> list[dict[str, Any]]:
	found = []
	for path in [repo / "package.json", *sorted(repo.glob("*/package.json"))]:
		if not path.is_file():
			continue
		try:
			found.append(json.loads(path.read_text()))
		except (json.JSONDecodeError, UnicodeDecodeError):
			raise ValidationFailed(
				"App has invalid package.json file", app, package=str(path.relative_to(repo))
			) from None
	return found


def apt_packages(apps: dict[str, Path]) -> list[str]:
	"""The apt packages apps declare in pyproject.toml (``[deploy.dependencies.apt] packages``)."""
	packages: list[str] = []
	for app, repo in apps.items():
		declared = ((_pyproject(app, repo) or {}).get("deploy", {}).get("dependencies", {})).get("apt", {})
		for package in declared.get("packages", []) if isinstance(declared, dict) else []:
			package = str(package).strip()
			if not _APT_PACKAGE.match(package):
				raise ValidationFailed(
					f"App declares an apt package that is not a Debian package name: {package!r}",
					app,
					fix=". Fix: [deploy.dependencies.apt] packages in the app's pyproject.toml.",
				)
			if package not in packages:
				packages.append(package)
	return packages


def prepare_dockerfile(dockerfile: str, packages: list[str], keep_syntax_directive: bool) -> str:
	"""Press's Dockerfile as the builder runs it: the apps' apt packages injected before the
	mariadb-dump line (each with its own ``#stage-pre-<package>`` marker) and, unless kept, the
	``# syntax=`` directive dropped (it names a frontend image the daemon would pull from a hub)."""
	if not keep_syntax_directive:
		dockerfile = _SYNTAX_DIRECTIVE.sub(
			lambda m: re.sub(
				r"#\s*syntax\s*=[^\n]*\n",
				"# (syntax directive dropped: built-in frontend)\n",
				m[0],
				flags=re.IGNORECASE,
			),
			dockerfile,
			count=1,
		)
	if packages and APT_ANCHOR in dockerfile:
		injection = "\n\n".join(
			"RUN --mount=type=cache,sharing=locked,target=/var/cache/apt apt-get update \\\n"
			f"  && apt-get install --yes --no-install-suggests --no-install-recommends {package} \\\n"
			"  && rm -rf /var/lib/apt/lists/* \\\n"
			f"  `#stage-pre-{package}`"
			for package in packages
		)
		dockerfile = dockerfile.replace(APT_ANCHOR, f"{injection}\n\n{APT_ANCHOR}", 1)
	return dockerfile


def bench_files(params: dict[str, Any], apps: list[str]) -> dict[str, str]:
	"""The files Press's Dockerfile copies from the context besides the apps: the bench's process
	layout under supervisord (web :8000, socketio :9000, scheduler, RQ workers, the two redis), the
	redis configurations and a common_site_config.json pointing at them. Written from
	``deploy_candidate_params``; the bench's own configuration comes later from New Bench."""
	bench = "/home/frappe/frappe-bench"
	cache_mb = int(params.get("redis_cache_size") or 512)

	def program(name: str, command: str, priority: int, **extra: Any) -> str:
		lines = [
			f"[program:frappe-bench-{name}]",
			f"command={command}",
			f"priority={priority}",
			"autostart=true",
			"autorestart=true",
			f"stdout_logfile={bench}/logs/{name}.log",
			f"stderr_logfile={bench}/logs/{name}.error.log",
			"user=frappe",
			f"directory={extra.pop('directory', bench)}",
			*(f"{key}={value}" for key, value in extra.items()),
		]
		return "\n".join(lines) + "\n"

	if params.get("merge_all_rq_queues"):
		queues = {"default": "short,default,long"}
	elif params.get("merge_default_and_short_rq_queues"):
		queues = {"short-default": "short,default", "long": "long"}
	else:
		queues = {"short": "short", "default": "default", "long": "long"}
	worker = "bench worker-pool" if params.get("use_rq_workerpool") else "bench worker"
	programs = [
		program(
			"redis-cache", f"redis-server {bench}/config/redis-cache.conf", 1, directory=f"{bench}/sites"
		),
		program(
			"redis-queue", f"redis-server {bench}/config/redis-queue.conf", 1, directory=f"{bench}/sites"
		),
		program(
			"frappe-web",
			f"{bench}/env/bin/gunicorn --bind 0.0.0.0:8000 --workers 2 --timeout 120 --worker-tmp-dir /dev/shm "
			"frappe.app:application --preload",
			4,
			directory=f"{bench}/sites",
			killasgroup="true",
		),
		program("node-socketio", f"node {bench}/apps/frappe/socketio.js", 4),
		program("frappe-schedule", "bench schedule", 3),
	]
	workers = []
	for name, queue in queues.items():
		programs.append(
			program(f"{name}-worker", f"{worker} --queue {queue}", 4, stopwaitsecs=1560, killasgroup="true")
		)
		workers.append(f"frappe-bench-{name}-worker")
	custom = params.get("custom_workers") or {}
	for name, config in custom.items() if isinstance(custom, dict) else []:
		if not _SAFE_NAME.match(str(name)):
			continue
		timeout = (config or {}).get("timeout", 1560) if isinstance(config, dict) else 1560
		programs.append(program(f"{name}-worker", f"bench worker --queue {name}", 4, stopwaitsecs=timeout))
		workers.append(f"frappe-bench-{name}-worker")
	groups = (
		"[group:frappe-bench-web]\nprograms=frappe-bench-frappe-web,frappe-bench-node-socketio\n\n"
		f"[group:frappe-bench-workers]\nprograms=frappe-bench-frappe-schedule,{','.join(workers)}\n\n"
		"[group:frappe-bench-redis]\nprograms=frappe-bench-redis-cache,frappe-bench-redis-queue\n"
	)

	def redis(port: int, extra: list[str]) -> str:
		return "\n".join([f"port {port}", "bind 127.0.0.1", "dbfilename ''", *extra]) + "\n"

	cache_extra = [f"maxmemory {cache_mb}mb", "maxmemory-policy allkeys-lru", 'save ""', "appendonly no"]
	# is_redisearch_enabled: no RediSearch module ships with this builder (redis/ stays empty of it)
	return {
		"supervisord.conf": (
			"[unix_http_server]\nfile=/tmp/supervisor.sock\nchmod=0700\n\n"
			"[supervisord]\nnodaemon=true\nlogfile=/home/frappe/frappe-bench/logs/supervisord.log\n"
			"pidfile=/tmp/supervisord.pid\nuser=frappe\n\n"
			"[rpcinterface:supervisor]\n"
			"supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
			"[supervisorctl]\nserverurl=unix:///tmp/supervisor.sock\n\n"
			f"[include]\nfiles={bench}/config/supervisor.conf\n"
		),
		"config/supervisor.conf": "\n".join(programs) + "\n" + groups,
		"config/redis-cache.conf": redis(REDIS_CACHE_PORT, cache_extra),
		"config/redis-queue.conf": redis(REDIS_QUEUE_PORT, ['save ""', "appendonly no"]),
		"common_site_config.json": json.dumps(
			{
				"redis_cache": f"redis://127.0.0.1:{REDIS_CACHE_PORT}",
				"redis_queue": f"redis://127.0.0.1:{REDIS_QUEUE_PORT}",
				"redis_socketio": f"redis://127.0.0.1:{REDIS_QUEUE_PORT}",
				"webserver_port": 8000,
				"socketio_port": 9000,
			},
			indent=1,
		)
		+ "\n",
		".vimrc": "set nocompatible\nsyntax on\n",
		"redis/README": "RediSearch is not bundled by press_selfhosted's builder.\n",
		"apps.txt": "".join(f"{app}\n" for app in apps),
	}


def lay_out_context(settings: BuilderSettings, request: BuildRequest) -> tuple[Path, list[str]]:
	"""The build directory from the cached clones, Press's Dockerfile and the bench files; laid anew
	each time (a rerun after a crash starts from a clean directory). Returns it and the apt packages."""
	directory = settings.build_dir(request)
	shutil.rmtree(directory, ignore_errors=True)
	(directory / "apps").mkdir(parents=True)
	apps: dict[str, Path] = {}
	for clone in request.clones:
		apps[clone.app] = directory / "apps" / clone.app
		shutil.copytree(settings.clones / clone.source / clone.hash, apps[clone.app], symlinks=True)
	for name, content in bench_files(request.params, list(apps)).items():
		(directory / name).parent.mkdir(parents=True, exist_ok=True)
		(directory / name).write_text(content)
	packages = apt_packages(apps)
	(directory / "Dockerfile").write_text(
		prepare_dockerfile(request.dockerfile, packages, settings.keep_syntax_directive)
	)
	return directory, packages


# --- validations ------------------------------------------------------------------------------------


def _version_ok(actual: str, expected: str) -> bool:
	if actual.count(".") == 1:
		actual += ".0"
	try:
		version = semantic_version.Version.coerce(actual)
		try:
			spec: Any = semantic_version.SimpleSpec(expected)
		except ValueError:
			spec = semantic_version.NpmSpec(expected)
		return version in spec
	except ValueError:
		return True  # a requirement the builder cannot read is left to pip and yarn


def _syntax_error(repo: Path) -> str:
	for path in sorted(repo.rglob("*.py")):
		if any(part in (".git", "node_modules") for part in path.parts):
			continue
		try:
			ast.parse(path.read_bytes(), filename=str(path.relative_to(repo)))
		except SyntaxError as error:
			return f"{path.relative_to(repo)}:{error.lineno}: {error.msg}"
		except (ValueError, OSError) as error:
			return f"{path.relative_to(repo)}: {error}"
	return ""


def _app_version(app: str, repo: Path, pyproject: dict[str, Any] | None) -> str | None:
	version = ((pyproject or {}).get("project") or {}).get("version")
	if isinstance(version, str):
		return version
	init = repo / app / "__init__.py"
	if init.is_file():
		for line in init.read_text(errors="replace").splitlines():
			if line.startswith(("__version__ =", "VERSION =")):
				return line.split("=", 1)[1].strip().strip("\"'") or None
	return None


def validate_apps(request: BuildRequest, directory: Path) -> list[str]:
	"""The Agent's checks of the cloned apps; raises ValidationFailed with its report. Returns notes."""
	apps = {clone.app: directory / "apps" / clone.app for clone in request.clones}
	releases = {clone.app: clone.release for clone in request.clones}
	invalid = []
	for app, repo in apps.items():
		reason = _syntax_error(repo)
		if reason:
			invalid.append({"app": app, "invalid_release": releases[app], "reason": reason})
	if invalid:
		raise ValidationFailed(
			"Invalid release found",
			invalid[0]["app"],
			invalid_releases=invalid,
			fix=f": {invalid[0]['reason']}. Fix: release a commit whose Python files compile.",
		)
	notes = []
	pyprojects = {}
	for app, repo in apps.items():
		pyprojects[app] = _pyproject(app, repo)
		has_requirements = (repo / "requirements.txt").is_file()
		if not (repo / "pyproject.toml").is_file() and not has_requirements:
			raise ValidationFailed(
				"No python dependency file found",
				app,
				fix=". Fix: add a pyproject.toml (or requirements.txt) at the app's root.",
			)
		if not (repo / "pyproject.toml").is_file():
			notes.append(f"{app} uses only requirements.txt (pyproject.toml is preferred)")
	dependencies = {
		key.removesuffix("_VERSION").lower(): value for key, value in request.dependencies.items()
	}
	python, node = dependencies.get("python"), dependencies.get("node")
	for app, pyproject in pyprojects.items():
		expected = ((pyproject or {}).get("project") or {}).get("requires-python")
		if python and expected and not _version_ok(python, expected):
			raise ValidationFailed(
				"Incompatible Python version found",
				app,
				actual=python,
				expected=expected,
				fix=". Fix: the Release Group's PYTHON_VERSION dependency, or the app's requires-python.",
			)
	for app, repo in apps.items():
		for package in _package_jsons(app, repo):
			expected = (package.get("engines") or {}).get("node")
			if node and expected and not _version_ok(node, expected):
				raise ValidationFailed(
					"Incompatible Node version found",
					app,
					actual=node,
					expected=expected,
					package=package.get("name"),
					fix=". Fix: the Release Group's NODE_VERSION dependency, or the package's engines.node.",
				)
	for app, pyproject in pyprojects.items():
		needs = (((pyproject or {}).get("tool") or {}).get("bench") or {}).get("frappe-dependencies") or {}
		for other, expected in needs.items():
			actual = _app_version(other, apps[other], pyprojects.get(other)) if other in apps else None
			if actual and not _version_ok(actual, str(expected)):
				raise ValidationFailed(
					"Incompatible app version found",
					app,
					actual=f"{other} {actual}",
					expected=str(expected),
					fix=f". Fix: a release of {other} that {app} accepts.",
				)
	return notes


def check_image_name(request: BuildRequest, namespace: str) -> None:
	"""Press's name ``<registry>[/<namespace>]/<domain>/<group>:<build>``, each part filled."""
	host = request.registry_url.split("://", 1)[-1].rstrip("/")
	if not host:
		raise BuildError(
			"builder/build: registry.url is empty. Fix: fill Press Settings' docker_registry_url "
			"(press_selfhosted writes it when a Local Registry is marked Default)."
		)
	if not request.repository.startswith(host + "/"):
		raise BuildError(
			f"image_repository {request.repository!r} is not in the registry {host}. Fix: keep Press Settings' "
			"docker_registry_url in step with the default Local Registry."
		)
	path = request.repository[len(host) + 1 :].split("/")
	names = (["docker_registry_namespace"] * len(namespace.split("/")) if namespace else []) + [
		"domain",
		"Release Group",
	]
	for index, segment in enumerate(path):
		what = names[index] if index < len(names) else "image path"
		if segment in ("", "None", "none", "null"):
			where = (
				"the Release Group's name"
				if what == "Release Group"
				else f"Press Settings' {what} (Press names images <docker_registry_url>/"
				"<docker_registry_namespace>/<domain>/<release group>)"
			)
			raise BuildError(
				f"Image name {request.image} has an empty part where {what} goes. Fix: fill {where}, then "
				"deploy again."
			)
		if not _PATH_COMPONENT.match(segment):
			raise BuildError(
				f"Image name {request.image}: {segment!r} ({what}) is not a Docker repository path part "
				"(lowercase letters, digits, and '.', '_' or '-' between them). Fix: that Press setting."
			)
	if not _TAG.match(request.tag):
		raise BuildError(
			f"image_tag {request.tag!r} is not a Docker tag (letters, digits, '_', '.', '-'; at most 128)."
		)


# --- BuildKit ---------------------------------------------------------------------------------------


def cli_host_args(host: DockerHost) -> list[str]:
	"""The docker CLI's flags to reach ``host`` as docker-py does: its socket, and TLS client
	certificates on ``tcp://`` (verified against the CA when one is given). ``ssh://`` needs the
	ssh client here and the docker CLI on the server, as docker-py's ssh transport does."""
	args = ["--host", host.socket]
	if host.socket.startswith("tcp://") and host.tls_cert_file:
		args += ["--tlsverify", "--tlscacert", host.tls_ca_file] if host.tls_ca_file else ["--tls"]
		args += ["--tlscert", host.tls_cert_file, "--tlskey", str(host.tls_key_file)]
	return args


@dataclass
class Vertex:
	"""One BuildKit vertex of the plain progress output (a Dockerfile instruction, or internal work)."""

	number: int
	name: str
	status: str = "Running"  # Running | Done | Cached | Error
	output: list[str] = field(default_factory=list)
	error: str = ""

	@property
	def marker(self) -> str | None:
		found = STAGE_MARKER.search(self.name)
		return found[1] if found else None

	@property
	def step(self) -> str:
		found = re.match(r"^\[(?:[^\]]*? )?(\d+/\d+)\]", self.name)
		return f"Dockerfile step {found[1]}" if found else self.name.split("]", 1)[0].lstrip("[")


class BuildKitLog:
	"""Reads ``--progress=plain`` lines: the vertices, their outcome, and the image id."""

	def __init__(self):
		self.lines: list[str] = []  # raw, each ending "\n", as Press's DockerBuildOutputParser reads them
		self.vertices: dict[int, Vertex] = {}
		self.trailer: list[str] = []  # what the CLI prints after the vertices (the error summary)
		self.image_id: str | None = None

	def feed(self, raw: str) -> bool:
		"""Reads one line; True when it starts or ends a vertex (a stage Press shows changed)."""
		line = raw.rstrip("\n")
		self.lines.append(line + "\n")
		found = re.match(r"^#(\d+) (.*)$", line)
		if not found:
			if line.strip():
				self.trailer.append(line)
			return False
		number, text = int(found[1]), found[2]
		vertex = self.vertices.get(number)
		if vertex is None:
			self.vertices[number] = Vertex(number, text)
			return True
		if text == vertex.name or text.startswith("sha256:"):
			return False
		if text.startswith("DONE "):
			vertex.status = "Done"
		elif text == "CACHED":
			vertex.status = "Cached"
		elif text.startswith("ERROR:"):
			vertex.status, vertex.error = "Error", text[6:].strip()
		else:
			image = re.match(r"^writing image (sha256:[0-9a-f]{64})", text)
			if image:
				self.image_id = image[1]
			timed = re.match(r"^\d+\.\d+ (.*)$", text)
			vertex.output.append(timed[1] if timed else text)
			return False
		return True

	@property
	def failed(self) -> Vertex | None:
		return next((v for v in self.vertices.values() if v.status == "Error"), None)

	def stages(self) -> list[dict[str, Any]]:
		"""The marked steps and their outcome (job data ``stages``, for operators and the glue)."""
		found = []
		for vertex in self.vertices.values():
			if vertex.marker:
				stage, _, step = vertex.marker.partition("-")
				found.append({"stage": stage, "step": step, "status": vertex.status, "vertex": vertex.number})
		return found


def _no_space(text: str) -> bool:
	return "no space left on device" in text.lower()


def failure_of(server: str, log: BuildKitLog, returncode: int) -> BuildError:
	"""What a failed ``docker build`` means, for the Build Image step's output and the job's data."""
	vertex = log.failed
	detail = vertex.error if vertex else "\n".join(log.trailer[-5:]) or f"exit code {returncode}"
	everything = "".join(log.lines)
	if _no_space(everything):
		where = f"during {vertex.marker or vertex.name}" if vertex else "while building"
		return BuildHostDiskFull(server, where, detail)
	if vertex is None:
		return BuildError(f"The build on build server {server} failed (exit code {returncode}): {detail}")
	code = _EXIT_CODE.search(vertex.error)
	tail = "\n".join(vertex.output[-TAIL_LINES:]) or "(no output)"
	what = f"`{vertex.marker}` ({vertex.step})" if vertex.marker else f"`{vertex.name[:120]}`"
	hint = (
		"Fix: make the image it names available on the build server (or its registry reachable), then deploy again."
		if "load metadata" in vertex.name or "FROM" in vertex.name or "resolve image" in vertex.name
		else "Fix: correct what this stage installs (the app release, its dependencies or the Release Group's "
		"packages), then deploy again."
	)
	return BuildStageFailed(
		f"Build stage {what} failed on build server {server}"
		+ (f" with exit code {code[1]}" if code else "")
		+ f": {vertex.error}\nLast lines of its output:\n{tail}\n{hint}"
	)


def run_buildkit(
	settings: BuilderSettings,
	host: DockerHost,
	request: BuildRequest,
	context_tar: Path,
	labels: dict[str, str],
	token_file: Path | None,
	on_line: Callable[[str], None],
) -> tuple[int, str]:
	"""``docker build`` with BuildKit on ``host``, the context tar on stdin; returns (exit code, image id)."""
	iidfile = context_tar.with_suffix(".iid")
	iidfile.unlink(missing_ok=True)
	config = settings.root / "docker-config"  # an empty client configuration: no stored credentials
	config.mkdir(parents=True, exist_ok=True)
	command = [
		settings.docker_cli,
		*cli_host_args(host),
		"build",
		"--progress=plain",
		"--platform",
		request.platform,
	]
	command += ["--tag", request.image, "--iidfile", str(iidfile)]
	for key, value in labels.items():
		command += ["--label", f"{key}={value}"]
	if token_file:
		command += ["--secret", f"id=build_token,src={token_file}"]
	if request.no_cache:
		command.append("--no-cache")
	command.append("-")
	environment = {
		key: value
		for key, value in os.environ.items()
		if key not in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
	}
	environment.update(
		DOCKER_BUILDKIT="1", BUILDKIT_PROGRESS="plain", PROGRESS_NO_TRUNC="1", DOCKER_CONFIG=str(config)
	)
	try:
		with open(context_tar, "rb") as context:
			process = subprocess.Popen(
				command,
				stdin=context,
				stdout=subprocess.PIPE,
				stderr=subprocess.STDOUT,
				env=environment,
				text=True,
				errors="replace",
				bufsize=1,
				preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, resolved before the fork
			)
	except OSError as error:
		raise BuildError(
			f"The docker CLI {settings.docker_cli} could not run ({error}). Fix: install Debian's docker.io "
			"(its CLI builds with BuildKit) on the machine that runs press_selfhosted's workers."
		) from None
	assert process.stdout is not None
	for line in process.stdout:
		on_line(line)
	code = process.wait()
	image_id = iidfile.read_text().strip() if code == 0 and iidfile.exists() else ""
	iidfile.unlink(missing_ok=True)
	return code, image_id


def _load_prctl() -> Callable[..., int] | None:
	try:
		return ctypes.CDLL(None, use_errno=True).prctl
	except (OSError, AttributeError):  # not Linux
		return None


_PRCTL = _load_prctl()  # resolved in the parent: the forked child only calls it


def _die_with_parent() -> None:
	"""In the CLI's process: a killed worker takes its build along (BuildKit cancels a build whose
	client is gone), so a resumed job never races a build the dead worker left running."""
	if _PRCTL is not None:
		_PRCTL(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _local_image_id(ctx: StepContext, image: str) -> str | None:
	with docker_errors(ctx.server.docker, f"looking for image {image}"):
		try:
			return ctx.docker.images.get(image).id
		except docker.errors.ImageNotFound:
			return None


def tar_context(directory: Path, target: Path) -> None:
	partial = target.with_suffix(".partial")
	# gzip, as the Agent sends it: the CLI recognises a compressed archive on stdin as a context
	with tarfile.open(partial, "w:gz", compresslevel=1, format=tarfile.GNU_FORMAT) as tar:
		tar.add(str(directory), arcname=".")
	partial.replace(target)


# --- push -------------------------------------------------------------------------------------------


@dataclass
class PushResult:
	image: str
	digest: str
	size: int | None


def _push_error(host: DockerHost, image: str, registry: str, username: str, message: str) -> EngineError:
	lowered = message.lower()
	if _no_space(message):
		return BuildHostDiskFull(host.server, f"while pushing {image}", message)
	if any(
		word in lowered for word in ("unauthorized", "authentication required", "denied", "no basic auth")
	):
		return PushDenied(
			f"The registry {registry} refused the push of {image} for user {username or '(anonymous)'}: {message}. "
			"Fix: check the Local Registry's Username and Password (for an htpasswd registry, its htpasswd "
			"entry) and that this user may push to the namespace."
		)
	if "x509" in lowered or "certificate" in lowered:
		return RegistryTLSError(
			f"Docker on build server {host.server} does not trust the registry {registry}: {message}. Fix: put the "
			f"registry's CA certificate in /etc/docker/certs.d/{registry}/ca.crt on that server."
		)
	if any(
		word in lowered
		for word in (
			"connection refused",
			"no such host",
			"i/o timeout",
			"dial tcp",
			"network is unreachable",
		)
	):
		return RegistryUnreachable(
			f"Docker on build server {host.server} cannot reach the registry {registry}: {message}. Fix: check the "
			"Local Registry's URL, that the registry runs, and that the build server can reach its port."
		)
	return PushFailed(f"Pushing {image} to {registry} from build server {host.server} failed: {message}")


def push_image(
	host: DockerHost,
	client: docker.DockerClient,
	repository: str,
	tag: str,
	target: RegistryTarget,
	on_progress: Callable[[dict[str, Any]], None] = lambda line: None,
) -> PushResult:
	"""Pushes ``repository:tag`` with ``target``'s credentials; returns the digest the registry reported."""
	image = f"{repository}:{tag}"
	registry = repository.split("/", 1)[0]
	auth = {"serveraddress": registry}
	if target.username:
		auth.update(username=target.username, password=target.password)
	digest, size = None, None
	with docker_errors(host, f"pushing {image}"):
		try:
			stream: Iterable[dict[str, Any]] = client.api.push(
				repository, tag=tag, auth_config=auth, stream=True, decode=True
			)
			for line in stream:
				on_progress(line)
				if "error" in line or "errorDetail" in line:
					message = (line.get("errorDetail") or {}).get("message") or line.get("error") or ""
					raise _push_error(host, image, registry, target.username, message)
				aux = line.get("aux")
				if isinstance(aux, dict) and aux.get("Digest"):
					digest, size = aux["Digest"], aux.get("Size")
		except docker.errors.APIError as error:
			raise _push_error(
				host, image, registry, target.username, error.explanation or str(error)
			) from error
	if not digest:
		raise PushFailed(f"Pushing {image} from {host.server} ended without a digest from the registry.")
	return PushResult(image=image, digest=digest, size=size)


class PushLog:
	"""Push progress as Press's UploadStepUpdater reads it: the latest line per layer id, errors kept."""

	def __init__(self):
		self.lines: list[dict[str, Any]] = []
		self._by_id: dict[str, dict[str, Any]] = {}

	def add(self, line: dict[str, Any]) -> None:
		kept = {
			key: line[key]
			for key in ("id", "status", "progress", "aux", "error", "errorDetail")
			if key in line
		}
		if not kept:
			return
		layer = kept.get("id")
		if layer and layer in self._by_id:
			self._by_id[layer].clear()
			self._by_id[layer].update(kept)
			return
		if layer:
			self._by_id[layer] = kept
		self.lines.append(kept)


# --- the Run Remote Builder handler -----------------------------------------------------------------


class _Job:
	"""The build's state, rebuilt from the payload in every step (steps run in separate calls)."""

	def __init__(self, ctx: StepContext, settings: BuilderSettings):
		self.ctx = ctx
		self.settings = settings
		self.request = BuildRequest.from_payload(ctx.payload)
		self._published = 0.0

	def output(self) -> dict[str, list]:
		try:
			found = json.loads(self.ctx.data.get("output") or "{}")
		except (TypeError, json.JSONDecodeError):
			found = {}
		return {"build": found.get("build") or [], "push": found.get("push") or []}

	def publish(
		self, build: list[str] | None = None, push: list[dict] | None = None, force: bool = False
	) -> None:
		"""Job data ``output`` as Press parses it, and the step's command output it reads while the job
		runs; at most once a second unless ``force`` (the executor saves both with the step's output)."""
		now = time.monotonic()
		if not force and now - self._published < PUBLISH_INTERVAL:
			return
		self._published = now
		current = self.output()
		text = json.dumps(
			{
				"build": current["build"] if build is None else build,
				"push": current["push"] if push is None else push,
			}
		)
		self.ctx.data["output"] = text
		# while the job runs, Press reads the output from the running step's first command (its job data
		# is read again only when the job ends)
		self.ctx.commands = [{"command": "docker push" if build is None else "docker build", "output": text}]

	def target(self) -> RegistryTarget:
		base = self.settings.registry_target(self.request.registry_url)
		password = self.ctx.secret("registry_password") if self.request.username else ""
		return RegistryTarget(
			url=base.url,
			namespace=base.namespace,
			username=self.request.username,
			password=password,
			verify_tls=base.verify_tls,
			ca_bundle=base.ca_bundle,
			insecure=base.insecure,
		)


def _clone_url(ctx: StepContext, index: int, clone: AppClone) -> str:
	if MASK not in clone.url:
		return clone.url
	# the job store masked the token of a private source: read the URL from Press's request again
	url = ctx.secret(f"clone_instructions.{index}.url")
	if not url or MASK in url:
		raise CloneFailed(
			clone.app,
			"the URL of this private source is masked and press_selfhosted could not read it back from Press's "
			"request. Fix: deploy again so that Press sends the request anew.",
		)
	return url


def _push_progress(ctx: StepContext, job: _Job, log: PushLog, line: dict[str, Any]) -> None:
	log.add(line)
	job.publish(push=log.lines)
	if line.get("status") and not line.get("progressDetail"):
		ctx.log(f"{line.get('id', '')}: {line['status']}".lstrip(": "))


class BuilderJobs:
	"""Press's Run Remote Builder: clone the apps, validate them, build the bench image with BuildKit, push it
	to the registry, clean up; the steps as Press's Agent Job Type names them."""

	def __init__(self, settings: BuilderSettings):
		self.settings = settings

	def handlers(self) -> list[Handler]:
		steps = (
			self.clone_repositories,
			self.run_validations,
			self.build_image,
			self.push_docker_image,
			self.cleanup_context,
		)
		return [
			handler(
				"Run Remote Builder",
				"POST",
				"builder/build",
				list(zip(STEPS, steps, strict=True)),
				initial_data={"output": json.dumps({"build": [], "push": []})},
			)
		]

	def clone_repositories(self, ctx: StepContext) -> None:
		job = _Job(ctx, self.settings)
		entries: list[str] = []
		ctx.step_data = entries
		for index, clone in enumerate(job.request.clones):
			try:
				entries.append(clone_app(self.settings, clone, _clone_url(ctx, index, clone)))
			except CloneFailed as failure:
				ctx.step_data = {"traceback": ctx.redact(str(failure))}
				raise
		lay_out_context(self.settings, job.request)

	def run_validations(self, ctx: StepContext) -> None:
		job = _Job(ctx, self.settings)
		request = job.request
		directory = self.settings.build_dir(request)
		try:
			if not (directory / "Dockerfile").is_file():  # a resumed job whose directory is gone
				for index, clone in enumerate(request.clones):
					clone_app(self.settings, clone, _clone_url(ctx, index, clone))
				lay_out_context(self.settings, request)
			notes = validate_apps(request, directory)
			check_image_name(request, self.settings.registry_target(request.registry_url).namespace)
			if not request.no_push:
				test_connection(job.target())
		except ValidationFailed as failure:
			ctx.step_data = failure.report
			raise
		except EngineError as failure:
			ctx.step_data = {"message": str(failure)}
			raise
		# Press reads this step's data as a validation report whenever the job fails: none on success
		ctx.step_data = {}
		ctx.data.update(image=request.image, image_repository=request.repository, image_tag=request.tag)
		markers = STAGE_MARKER.findall((directory / "Dockerfile").read_text())
		ctx.log(
			f"{len(request.clones)} app(s) validated; Dockerfile stages: {', '.join(markers) or '(none)'}"
		)
		for note in notes:
			ctx.log(note)

	def build_image(self, ctx: StepContext) -> None:
		job = _Job(ctx, self.settings)
		request = job.request
		if ctx.data.get("build_failed"):  # a rerun after the failure was recorded: the same outcome
			raise EndJob(
				str(ctx.data.get("build_error") or "The build failed."), run_after=("Cleanup Context",)
			)
		if ctx.data.get("build_failed") is False and _local_image_id(ctx, request.image) == ctx.data.get(
			"image_id"
		):
			# a rerun after the success was recorded: building again would only replace Press's build output
			ctx.log(f"{request.image} was built by an earlier run of this job ({ctx.data['image_id']}): kept")
			return
		ctx.data.pop("image_digest", None)  # a push recorded before is not of the image built now
		directory = self.settings.build_dir(request)
		if not (directory / "Dockerfile").is_file():
			raise BuildError(
				f"The build context of {request.build} is gone from {directory}. Fix: deploy again from the Deploy Candidate."
			)
		tarball = self.settings.context_tar(request)
		tar_context(directory, tarball)
		token_file = None
		if request.build_token:
			token = ctx.secret("build_token") if request.build_token == MASK else request.build_token
			token_file = self.settings.private(request) / "build_token"
			token_file.parent.mkdir(parents=True, exist_ok=True)
			token_file.touch(mode=0o600)
			token_file.write_text(token)
		log = BuildKitLog()
		job.publish(build=[], push=[], force=True)
		try:
			code, image_id = run_buildkit(
				self.settings,
				ctx.server.docker,
				request,
				tarball,
				naming.labels(ctx.server.name, "build"),
				token_file,
				# a stage that starts or ends is published at once: the next line may come minutes later
				lambda line: (job.publish(build=log.lines, force=log.feed(line)), ctx.log(line.rstrip("\n"))),
			)
		finally:
			tarball.unlink(missing_ok=True)
			shutil.rmtree(self.settings.private(request), ignore_errors=True)
			ctx.data["stages"] = log.stages()
			job.publish(build=log.lines, force=True)
		if code != 0:
			failure = failure_of(ctx.server.name, log, code)
			if not log.vertices:  # the CLI never reached BuildKit: an infrastructure failure, not the build's
				raise failure
			ctx.data.update(build_failed=True, build_error=str(failure))
			if log.failed and log.failed.marker:
				stage, _, step = log.failed.marker.partition("-")
				ctx.data["failed_stage"] = {"stage": stage, "step": step}
			raise EndJob(str(failure), run_after=("Cleanup Context",))
		ctx.data.update(build_failed=False, image_id=image_id or log.image_id)
		cached = sum(1 for v in log.vertices.values() if v.marker and v.status == "Cached")
		marked = sum(1 for v in log.vertices.values() if v.marker)
		ctx.log(
			f"Built {request.image} ({image_id or log.image_id}); {cached} of {marked} marked steps from cache."
		)

	def push_docker_image(self, ctx: StepContext) -> None:
		job = _Job(ctx, self.settings)
		request = job.request
		if request.no_push:
			ctx.log("no_push is set: the image stays on the build server.")
			return
		target = job.target()
		registry_path = request.repository.split("/", 1)[1]
		recorded = ctx.data.get("image_digest")
		if recorded and manifest_digest(target, registry_path, request.tag) == recorded:
			# a rerun after the push was recorded: pushing again would only replace Press's push output
			ctx.log(
				f"{request.image} was pushed by an earlier run of this job; the registry serves {recorded}"
			)
			return
		log = PushLog()
		result = None
		for attempt in range(1, self.settings.push_attempts + 1):
			try:
				test_connection(target)
				result = push_image(
					ctx.server.docker,
					ctx.docker,
					request.repository,
					request.tag,
					target,
					lambda line: _push_progress(ctx, job, log, line),
				)
				test_connection(target)
				break
			except (RegistryUnreachable, PushFailed) as failure:
				job.publish(push=log.lines, force=True)
				if attempt == self.settings.push_attempts:
					raise
				ctx.log(
					f"attempt {attempt} of {self.settings.push_attempts}: {failure}; retrying in {self.settings.push_retry_wait:.0f} s"
				)
				time.sleep(self.settings.push_retry_wait)
			finally:
				job.publish(push=log.lines, force=True)
		assert result is not None
		stored = manifest_digest(target, registry_path, request.tag)
		if stored != result.digest:
			raise PushFailed(
				f"The registry {request.registry_url} holds {stored or 'nothing'} for {request.image}, not the pushed "
				f"{result.digest}. Fix: check the registry's storage, then deploy again."
			)
		ctx.data["image_digest"] = result.digest
		ctx.log(f"Pushed {result.image} ({result.digest}); the registry serves that digest.")

	def cleanup_context(self, ctx: StepContext) -> None:
		request = BuildRequest.from_payload(ctx.payload)
		directory = self.settings.build_dir(request)
		existed = directory.exists()
		shutil.rmtree(directory, ignore_errors=True)
		self.settings.context_tar(request).unlink(missing_ok=True)
		shutil.rmtree(self.settings.private(request), ignore_errors=True)
		ctx.step_data = {"cleanup": True}
		ctx.log(
			f"Build directory {directory} {'removed' if existed else 'was already gone'}; cached clones kept."
		)


__all__ = [
	"AppClone",
	"BuildKitLog",
	"BuildRequest",
	"BuilderJobs",
	"BuilderSettings",
	"PushLog",
	"PushResult",
	"bench_files",
	"check_image_name",
	"cli_host_args",
	"clone_app",
	"lay_out_context",
	"prepare_dockerfile",
	"prune_workdir",
	"push_image",
	"validate_apps",
]
