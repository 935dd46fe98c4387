"""Bench image builds on a container build server, pushed to the Local Registry (Press's ``Run Remote Builder``).

Press prepares the build context itself (clones the apps, renders its Dockerfile whose every ``RUN``
ends with a `` `#stage-<stage>-<step>` `` marker), uploads it as ``builder/upload/<build>`` (a
``build_context_file``, answered with ``{"filename": ...}``) and then asks ``builder/build`` with that
``filename``, ``image_repository``, ``image_tag`` and ``registry``. This module keeps the uploaded
contexts, sends one to the build server's Docker Engine (``api.build``, streamed), turns the build
output into the lines Press's ``DockerBuildOutputParser`` reads (BuildKit's plain progress format:
``#<n> [stage-<k> <n>/<m>] RUN …``, ``#<n> CACHED``, ``#<n> DONE 1.2s``, ``#<n> ERROR: …``,
``writing image sha256:…``) and pushes the image with the registry's credentials.

Job data, as Press's ``DeployCandidateBuild.process_run_build`` reads it: ``output`` is a JSON string
``{"build": [lines], "push": [push progress]}`` (the Agent publishes the same); the handler adds
``image``, ``image_repository``, ``image_tag``, ``image_id``, ``image_digest`` and ``stages``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tarfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.handlers import Handler, StepContext, handler
from press_selfhosted.engine.docker_hosts import DockerHost, docker_errors
from press_selfhosted.engine.errors import (
	EngineError,
	RegistryAuthError,
	RegistryError,
	RegistryTLSError,
	RegistryUnreachable,
)
from press_selfhosted.engine.registry import RegistryTarget, test_connection
from press_selfhosted.engine.registry_cleanup import manifest_digest

STAGE_MARKER = re.compile(r"`#stage-([^`]+)`")
_STEP_HEADER = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_LAYER_ID = re.compile(r"^ ---> ([0-9a-f]{12,64})$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
TAIL_LINES = 20
PUBLISH_INTERVAL = 1.0
PLATFORMS = {
	"x86_64": "linux/amd64",
	"amd64": "linux/amd64",
	"arm64": "linux/arm64",
	"aarch64": "linux/arm64",
}


class BuildError(EngineError):
	"""A build could not be done."""


class BuildContextError(BuildError):
	"""The uploaded build context is missing or unusable."""


class BuildStageFailed(BuildError):
	"""A Dockerfile step failed; names its ``#stage`` marker and keeps the last lines of its output."""

	def __init__(self, server: str, step: BuildStep, detail: str):
		self.step = step
		self.detail = detail
		tail = "\n".join(step.output[-TAIL_LINES:])
		super().__init__(
			f"Build stage {step.label} failed on build server {server}: {detail}\n"
			f"Last lines of its output:\n{tail or '(no output)'}\n"
			"Fix: correct what this stage installs (the app release, its dependencies or the Release Group's "
			"packages), then deploy again."
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


class PushDenied(RegistryAuthError):
	"""The registry refused the push (credentials or permissions)."""


class PushFailed(RegistryError):
	"""The push did not complete for another reason."""


# --- uploaded build contexts ------------------------------------------------------------------------


class ContextStore:
	"""Build contexts Press uploads (``builder/upload/<build>``), kept until ``Cleanup Context``.

	A context stays after a failed build so that running the job again can build it again."""

	def __init__(self, directory: str | os.PathLike):
		self.directory = Path(directory)

	def save(self, build: str, upload: IO[bytes]) -> str:
		"""Stores an upload as it streams in; returns the ``filename`` Press passes to ``builder/build``."""
		if not _SAFE_NAME.match(build or ""):
			raise BuildContextError(
				f"Build context upload refused: {build!r} is not a Deploy Candidate Build name "
				"(letters, digits, '.', '_' and '-' only)."
			)
		self.directory.mkdir(parents=True, exist_ok=True)
		filename = f"{build}-{uuid.uuid4().hex[:8]}.tar.gz"
		partial = self.directory / f".{filename}.part"
		with open(partial, "wb") as out:
			while chunk := upload.read(1 << 20):
				out.write(chunk)
		partial.replace(self.directory / filename)
		return filename

	def path(self, filename: str) -> Path:
		if not _SAFE_NAME.match(filename or "") or filename.startswith("."):
			raise BuildContextError(f"Build context {filename!r} is not a name this builder hands out.")
		return self.directory / filename

	def remove(self, filename: str) -> bool:
		path = self.path(filename)
		if path.exists():
			path.unlink()
			return True
		return False

	def prune(self, older_than: float, now: float | None = None) -> list[str]:
		"""Removes contexts (and interrupted uploads) not touched for ``older_than`` seconds: those of
		builds that failed and were never run again. Returns the removed file names."""
		if not self.directory.is_dir():
			return []
		cutoff = (time.time() if now is None else now) - older_than
		removed = []
		for path in self.directory.iterdir():
			if path.is_file() and path.stat().st_mtime < cutoff:
				path.unlink(missing_ok=True)
				removed.append(path.name)
		return sorted(removed)


def context_from_directory(directory: str | os.PathLike, extra: dict[str, bytes] | None = None) -> bytes:
	"""A gzipped tar of ``directory`` (plus ``extra`` files) as Press packages a build directory."""
	raw = io.BytesIO()
	with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=5) as tar:
		extra = extra or {}
		tar.add(str(directory), arcname=".", filter=lambda info: None if info.name[2:] in extra else info)
		for name, content in extra.items():
			info = tarfile.TarInfo(name)
			info.size = len(content)
			tar.addfile(info, io.BytesIO(content))
	return raw.getvalue()


def _is_gzip(path: Path) -> bool:
	with open(path, "rb") as handle:
		return handle.read(2) == b"\x1f\x8b"


def inspect_context(path: Path) -> list[str]:
	"""Checks the context is a tar with a Dockerfile at its root; returns the Dockerfile's stage markers."""
	if not path.exists():
		raise BuildContextError(
			f"Build context {path.name} is not on this builder (never uploaded, or already cleaned up). "
			"Fix: start the build again from the Deploy Candidate; Press uploads the context first."
		)
	try:
		with tarfile.open(path, mode="r:*") as tar:
			for member in tar:
				if member.isfile() and os.path.normpath(member.name) == "Dockerfile":
					dockerfile = tar.extractfile(member).read().decode(errors="replace")
					return STAGE_MARKER.findall(dockerfile)
	except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as error:
		raise BuildContextError(
			f"Build context {path.name} is not a readable tar archive ({error}). "
			"Fix: start the build again; the upload was probably cut short."
		) from error
	raise BuildContextError(
		f"Build context {path.name} has no Dockerfile at its root. Fix: start the build again from the Deploy Candidate."
	)


# --- build output -----------------------------------------------------------------------------------


@dataclass
class BuildStep:
	"""One Dockerfile instruction as the build went through it."""

	index: int
	total: int
	instruction: str
	stage_index: int
	marker: str | None  # "<stage>-<step>" from the `#stage-…` marker, for RUN steps that carry one
	status: str = "Running"
	cached: bool = False
	duration: float = 0.0
	output: list[str] = field(default_factory=list)
	started: float = field(default_factory=time.monotonic, repr=False)

	@property
	def label(self) -> str:
		where = f"Dockerfile step {self.index}/{self.total}"
		if self.marker:
			return f"`{self.marker}` ({where})"
		return f"`{self.instruction[:80]}` ({where})"

	def summary(self) -> dict[str, Any]:
		stage, _, step = (self.marker or "").partition("-")
		return {
			"index": self.index,
			"stage": stage,
			"step": step,
			"status": self.status,
			"cached": self.cached,
			"duration": round(self.duration, 3),
		}


class BuildProgress:
	"""Reads the classic builder's stream and keeps both the steps and Press's progress lines."""

	def __init__(self):
		self.steps: list[BuildStep] = []
		self.lines: list[str] = []  # Press's format, each ending with "\n"
		self.image_id: str | None = None
		self._stage_index = -1
		self._partial = ""

	@property
	def current(self) -> BuildStep | None:
		return self.steps[-1] if self.steps else None

	def stages(self) -> list[dict[str, Any]]:
		return [step.summary() for step in self.steps if step.marker]

	def feed(self, chunk: dict[str, Any]) -> list[str]:
		"""Takes one decoded chunk of ``api.build``; returns the raw lines it completed (for the log)."""
		if "aux" in chunk and isinstance(chunk["aux"], dict) and chunk["aux"].get("ID"):
			self.image_id = chunk["aux"]["ID"]
		text = self._partial + (chunk.get("stream") or "")
		*complete, self._partial = text.split("\n")
		for line in complete:
			self._line(line)
		return complete

	def flush(self) -> list[str]:
		rest, self._partial = self._partial, ""
		if rest:
			self._line(rest)
			return [rest]
		return []

	def fail(self, message: str) -> BuildStep | None:
		self.flush()
		step = self.current
		if step is not None:
			step.status = "Failure"
			step.duration = time.monotonic() - step.started
			self._emit(step.index, f"ERROR: {message}")
		return step

	def finish(self) -> None:
		self.flush()
		self._close()
		if self.image_id and self.current:
			self._emit(self.current.index + 1, f"writing image {self.image_id} done")

	def _emit(self, index: int, text: str) -> None:
		self.lines.append(f"#{index} {text}\n")

	def _close(self) -> None:
		step = self.current
		if step is not None and step.status == "Running":
			step.status = "Success"
			step.duration = time.monotonic() - step.started
			if not step.cached:
				self._emit(step.index, f"DONE {step.duration:.1f}s")

	def _line(self, line: str) -> None:
		header = _STEP_HEADER.match(line)
		if header:
			self._close()
			index, total, instruction = int(header[1]), int(header[2]), header[3].strip()
			if instruction.upper().startswith("FROM "):
				self._stage_index += 1
			marker = STAGE_MARKER.search(instruction)
			self.steps.append(
				BuildStep(index, total, instruction, max(self._stage_index, 0), marker[1] if marker else None)
			)
			self._emit(index, f"[stage-{max(self._stage_index, 0)} {index}/{total}] {instruction}")
			return
		step = self.current
		if step is None or not line.strip():
			return
		if line.startswith((" ---> Running in ", "Removing intermediate container ")):
			return
		if line.strip() == "---> Using cache":
			step.cached = True
			self._emit(step.index, "CACHED")
			return
		if _LAYER_ID.match(line):
			self._close()
			return
		if line.startswith(("Successfully built ", "Successfully tagged ")):
			return
		step.output.append(line)
		self._emit(step.index, f"{time.monotonic() - step.started:.3f} {line}")


# --- build and push ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildSpec:
	repository: str  # <registry>/<namespace>/<domain>/<release group>, as Press names it
	tag: str  # the Deploy Candidate Build name
	no_cache: bool = False
	platform: str | None = None
	build_args: dict[str, str] = field(default_factory=dict)
	labels: dict[str, str] = field(default_factory=dict)

	@property
	def image(self) -> str:
		return f"{self.repository}:{self.tag}"


@dataclass
class BuildResult:
	image: str
	image_id: str
	steps: list[dict[str, Any]]
	cached_steps: int
	run_steps: int


@dataclass
class PushResult:
	image: str
	digest: str
	size: int | None


def _no_space(text: str) -> bool:
	return "no space left on device" in text.lower()


def build_image(
	host: DockerHost,
	client: docker.DockerClient,
	context: IO[bytes],
	spec: BuildSpec,
	progress: BuildProgress,
	on_lines: Callable[[list[str]], None] = lambda lines: None,
	gzipped: bool = True,
) -> BuildResult:
	"""Builds ``context`` (a tar, gzipped or not) on ``host``, tagged ``spec.image``.

	``on_lines`` gets the raw builder lines as they arrive; ``progress`` holds Press's lines and the
	steps. The layer cache of the build server is used unless ``spec.no_cache``."""
	options: dict[str, Any] = {
		"fileobj": context,
		"custom_context": True,
		"encoding": "gzip" if gzipped else None,
		"tag": spec.image,
		"rm": True,
		"forcerm": True,
		"nocache": spec.no_cache,
		"buildargs": dict(spec.build_args) or None,
		"labels": dict(spec.labels) or None,
		"decode": True,
	}
	if spec.platform:
		options["platform"] = PLATFORMS.get(spec.platform, spec.platform)
	with docker_errors(host, f"building {spec.image}"):
		try:
			for chunk in client.api.build(**options):
				if "error" in chunk or "errorDetail" in chunk:
					message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error") or ""
					_raise_build_failure(host, progress, message, on_lines)
				on_lines(progress.feed(chunk))
		except docker.errors.APIError as error:
			_raise_build_failure(host, progress, error.explanation or str(error), on_lines)
	on_lines(progress.flush())
	progress.finish()
	if not progress.image_id:
		raise BuildError(f"The build of {spec.image} on {host.server} ended without an image id.")
	run_steps = [step for step in progress.steps if step.instruction.upper().startswith("RUN")]
	return BuildResult(
		image=spec.image,
		image_id=progress.image_id,
		steps=progress.stages(),
		cached_steps=sum(step.cached for step in run_steps),
		run_steps=len(run_steps),
	)


def _raise_build_failure(
	host: DockerHost, progress: BuildProgress, message: str, on_lines: Callable[[list[str]], None]
) -> None:
	on_lines(progress.flush())
	step = progress.fail(message)
	tail = "\n".join(step.output[-TAIL_LINES:]) if step else ""
	if _no_space(message) or _no_space(tail):
		where = f"during {step.label}" if step else "while building"
		raise BuildHostDiskFull(host.server, where, message)
	if step is None:
		raise BuildError(f"The build on {host.server} failed before its first step: {message}")
	raise BuildStageFailed(host.server, step, message)


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
				if "error" in line or "errorDetail" in line:
					message = (line.get("errorDetail") or {}).get("message") or line.get("error") or ""
					raise _push_error(host, image, registry, target.username, message)
				aux = line.get("aux")
				if isinstance(aux, dict) and aux.get("Digest"):
					digest, size = aux["Digest"], aux.get("Size")
				on_progress(line)
		except docker.errors.APIError as error:
			raise _push_error(
				host, image, registry, target.username, error.explanation or str(error)
			) from error
	if not digest:
		raise PushFailed(f"Pushing {image} from {host.server} ended without a digest from the registry.")
	return PushResult(image=image, digest=digest, size=size)


class PushLog:
	"""Push progress as Press's upload step reads it: the latest status per layer id, in order."""

	def __init__(self):
		self.lines: list[dict[str, Any]] = []
		self._by_id: dict[str, dict[str, Any]] = {}

	def add(self, line: dict[str, Any]) -> None:
		kept = {key: line[key] for key in ("id", "status", "progress", "aux") if key in line}
		if not kept:
			return
		layer = kept.get("id")
		if layer and layer in self._by_id:
			self._by_id[layer].update(kept)
			return
		if layer:
			self._by_id[layer] = kept
		self.lines.append(kept)


# --- the Run Remote Builder handler -----------------------------------------------------------------


@dataclass(frozen=True)
class BuilderSettings:
	"""What the handler needs besides the job: where uploads are kept and how to reach a registry.

	``registry_target(url)`` answers the Local Registry for ``url`` without its password (namespace,
	TLS verification, CA bundle); the password comes from ``ctx.secret("registry_password")``."""

	contexts: ContextStore
	registry_target: Callable[[str], RegistryTarget] = RegistryTarget


class _Build:
	"""The job's build state, rebuilt from the payload in every step (steps run in separate calls)."""

	def __init__(self, ctx: StepContext, settings: BuilderSettings):
		payload = ctx.payload
		self.ctx = ctx
		self.settings = settings
		self.filename = str(payload.get("filename") or "")
		registry = payload.get("registry") or {}
		self.registry_url = str(registry.get("url") or "")
		self.username = str(registry.get("username") or "")
		self.no_push = bool(payload.get("no_push"))
		self.spec = BuildSpec(
			repository=str(payload.get("image_repository") or ""),
			tag=str(payload.get("image_tag") or ""),
			no_cache=bool(payload.get("no_cache")),
			platform=payload.get("platform"),
			build_args={str(k): str(v) for k, v in (payload.get("build_args") or {}).items()},
			# the same labels for every build: a per-build label would change each stage's last
			# layer and make every later stage miss the cache
			labels=naming.labels(ctx.server.name, "build"),
		)

	def target(self) -> RegistryTarget:
		base = self.settings.registry_target(self.registry_url)
		password = self.ctx.secret("registry_password") if self.username else ""
		return RegistryTarget(
			url=base.url,
			namespace=base.namespace,
			username=self.username,
			password=password,
			verify_tls=base.verify_tls,
			ca_bundle=base.ca_bundle,
			insecure=base.insecure,
		)

	def publish(self, build_lines: list[str], push_lines: list[dict[str, Any]]) -> None:
		self.ctx.data["output"] = json.dumps({"build": build_lines, "push": push_lines})


def _clone_repositories(ctx: StepContext, settings: BuilderSettings) -> None:
	build = _Build(ctx, settings)
	path = settings.contexts.path(build.filename)
	inspect_context(path)
	ctx.log(
		f"Build context {build.filename} ({path.stat().st_size} bytes) is on this builder; "
		"Press cloned the app repositories into it."
	)


def _run_validations(ctx: StepContext, settings: BuilderSettings) -> None:
	build = _Build(ctx, settings)
	markers = inspect_context(settings.contexts.path(build.filename))
	ctx.log(f"Dockerfile stages: {', '.join(markers) or '(no #stage markers)'}")
	if not _TAG.match(build.spec.tag):
		raise BuildError(
			f"image_tag {build.spec.tag!r} is not a Docker tag (letters, digits, '_', '.', '-'; at most 128)."
		)
	if not build.spec.repository or build.spec.repository != build.spec.repository.lower():
		raise BuildError(
			f"image_repository {build.spec.repository!r} is not a Docker repository name (lowercase). "
			"Fix: Press Settings' domain and the Release Group name make it; they must be lowercase."
		)
	host = build.registry_url.split("://", 1)[-1].rstrip("/")
	if not build.spec.repository.startswith(host + "/"):
		raise BuildError(
			f"image_repository {build.spec.repository} is not in the registry {build.registry_url}. Fix: keep "
			"Press Settings' docker_registry_url in step with the default Local Registry."
		)
	ctx.data.update(image=build.spec.image, image_repository=build.spec.repository, image_tag=build.spec.tag)
	if build.no_push:
		ctx.log("no_push is set: the image stays on the build server.")
		return
	report = test_connection(build.target())
	ctx.log(report.message)


def _build_image(ctx: StepContext, settings: BuilderSettings) -> None:
	build = _Build(ctx, settings)
	path = settings.contexts.path(build.filename)
	progress = BuildProgress()
	last = [0.0]

	def on_lines(lines: list[str]) -> None:
		for line in lines:
			if line.strip():
				ctx.log(line)
		now = time.monotonic()
		if lines and now - last[0] >= PUBLISH_INTERVAL:
			last[0] = now
			build.publish(progress.lines, [])
			ctx.data["stages"] = progress.stages()

	ctx.data["build_failed"] = True
	try:
		with open(path, "rb") as context:
			result = build_image(
				ctx.server.docker, ctx.docker, context, build.spec, progress, on_lines, _is_gzip(path)
			)
	finally:
		build.publish(progress.lines, [])
		ctx.data["stages"] = progress.stages()
	ctx.data.update(build_failed=False, image_id=result.image_id)
	ctx.log(
		f"Built {result.image} ({result.image_id}); {result.cached_steps} of {result.run_steps} RUN steps from cache."
	)


def _push_docker_image(ctx: StepContext, settings: BuilderSettings) -> None:
	build = _Build(ctx, settings)
	if build.no_push:
		ctx.log("no_push is set: nothing pushed.")
		return
	build_lines = json.loads(ctx.data.get("output") or "{}").get("build", [])
	log = PushLog()
	target = build.target()
	last = [0.0]

	def on_progress(line: dict[str, Any]) -> None:
		log.add(line)
		if line.get("status") and not line.get("progressDetail"):
			ctx.log(f"{line.get('id', '')}: {line['status']}".lstrip(": "))
		now = time.monotonic()
		if now - last[0] >= PUBLISH_INTERVAL:
			last[0] = now
			build.publish(build_lines, log.lines)

	try:
		result = push_image(
			ctx.server.docker, ctx.docker, build.spec.repository, build.spec.tag, target, on_progress
		)
	finally:
		build.publish(build_lines, log.lines)
	registry_path = build.spec.repository.split("/", 1)[1]
	stored = manifest_digest(target, registry_path, build.spec.tag)
	if stored != result.digest:
		raise PushFailed(
			f"The registry {build.registry_url} holds {stored or 'nothing'} for {build.spec.image}, not the pushed "
			f"{result.digest}. Fix: check the registry's storage, then deploy again."
		)
	ctx.data["image_digest"] = result.digest
	ctx.log(f"Pushed {result.image} ({result.digest}); the registry serves that digest.")


def _cleanup_context(ctx: StepContext, settings: BuilderSettings) -> None:
	build = _Build(ctx, settings)
	removed = settings.contexts.remove(build.filename)
	ctx.log(f"Build context {build.filename} {'removed' if removed else 'was already removed'}.")


def run_remote_builder(settings: BuilderSettings) -> Handler:
	"""The ``Run Remote Builder`` handler (POST ``builder/build``), steps as Press's Agent Job Type."""

	def bound(step: Callable[[StepContext, BuilderSettings], None]) -> Callable[[StepContext], None]:
		return lambda ctx: step(ctx, settings)

	return handler(
		"Run Remote Builder",
		"POST",
		"builder/build",
		[
			("Clone Repositories", bound(_clone_repositories)),
			("Run Validations", bound(_run_validations)),
			("Build Image", bound(_build_image)),
			("Push Docker Image", bound(_push_docker_image)),
			("Cleanup Context", bound(_cleanup_context)),
		],
	)


def save_upload(settings: BuilderSettings, build: str, upload: IO[bytes]) -> dict[str, str]:
	"""Answers ``POST builder/upload/<build>`` (files ``build_context_file``) as the Agent does."""
	return {"filename": settings.contexts.save(build, upload)}


__all__ = [
	"BuildContextError",
	"BuildError",
	"BuildHostDiskFull",
	"BuildProgress",
	"BuildResult",
	"BuildSpec",
	"BuildStageFailed",
	"BuilderSettings",
	"ContextStore",
	"PushDenied",
	"PushFailed",
	"PushLog",
	"PushResult",
	"build_image",
	"context_from_directory",
	"inspect_context",
	"push_image",
	"run_remote_builder",
	"save_upload",
]
