"""What the build tests need to play Press and GitHub: app repositories (bare git repositories made
here, served from disk or over HTTP with a token), a Dockerfile shaped like Press's (same stage
markers, ``RUN --mount`` cache/bind/secret mounts, the mariadb-dump line the apt packages go before)
and the ``builder/build`` payload as ``DeployCandidateBuild.send_build_instructions_and_add_build_steps``
makes it."""

from __future__ import annotations

import base64
import http.server
import os
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path


def git(*args: str, cwd: Path) -> str:
	env = {
		**os.environ,
		"GIT_AUTHOR_NAME": "t",
		"GIT_AUTHOR_EMAIL": "t@x",
		"GIT_COMMITTER_NAME": "t",
		"GIT_COMMITTER_EMAIL": "t@x",
		"GIT_CONFIG_NOSYSTEM": "1",
	}
	return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@dataclass
class AppRepo:
	app: str
	bare: Path  # the "GitHub" repository
	commits: list[str]

	@property
	def url(self) -> str:
		return self.bare.as_uri()


def make_app(root: Path, app: str, files: dict[str, str], branch: str = "develop") -> AppRepo:
	"""A bare repository holding one commit of ``files`` (more with :func:`commit`)."""
	work, bare = root / f"{app}-work", root / f"{app}.git"
	work.mkdir(parents=True)
	git("init", "-q", "-b", branch, cwd=work)
	repo = AppRepo(app, bare, [])
	commit(repo, work, files)
	git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
	return repo


def commit(repo: AppRepo, work: Path, files: dict[str, str]) -> str:
	for name, content in files.items():
		(work / name).parent.mkdir(parents=True, exist_ok=True)
		(work / name).write_text(content)
	git("add", "-A", cwd=work)
	git("commit", "-q", "-m", f"change {len(repo.commits)}", cwd=work)
	sha = git("rev-parse", "HEAD", cwd=work).strip()
	repo.commits.append(sha)
	if repo.bare.exists():
		git("push", "-q", str(repo.bare), "HEAD", cwd=work)
	return sha


def frappe_files(version: str = "15.1.0") -> dict[str, str]:
	return {
		"pyproject.toml": (
			'[project]\nname = "frappe"\nversion = "' + version + '"\nrequires-python = ">=3.10"\n'
		),
		"frappe/__init__.py": f'__version__ = "{version}"\n',
		"package.json": '{"name": "frappe-framework", "engines": {"node": ">=18"}}\n',
		"VERSION": version + "\n",
	}


def app_files(
	app: str, apt: tuple[str, ...] = (), requires_python: str = ">=3.10", extra: str = ""
) -> dict[str, str]:
	packages = ", ".join(f'"{p}"' for p in apt)
	return {
		"pyproject.toml": (
			f'[project]\nname = "{app}"\nversion = "1.0.0"\nrequires-python = "{requires_python}"\n\n'
			'[tool.bench.frappe-dependencies]\nfrappe = ">=15.0.0,<16.0.0"\n\n'
			f"[deploy.dependencies.apt]\npackages = [{packages}]\n"
		),
		f"{app}/__init__.py": f'__version__ = "1.0.0"\n{extra}',
		f"{app}/hooks.py": f'app_name = "{app}"\n',
		"VERSION": "1.0.0\n",
	}


def press_dockerfile(
	base: str, apps: list[str], fail_at: str = "", sleep_at: str = "", seconds: int = 0, fresh: str = ""
) -> str:
	"""Press's Dockerfile's shape (press/docker/Dockerfile) on a local base that has the stand-in bench:
	the same stage markers, cache mounts (apt and pip caches), bind mounts of the cloned apps, the build
	token secret, the mariadb-dump anchor line, and the COPYs of the context's config files. ``fresh``
	makes every layer new to BuildKit's cache (a first build that really runs every stage)."""

	def failing(marker: str) -> str:
		extra = ""
		if marker == fail_at:
			extra += ' && echo "ERROR: this stage was made to fail" && exit 3'
		if marker == sleep_at:
			extra += f" && sleep {seconds}"
		return extra

	lines = [
		"# syntax = docker/dockerfile:experimental",
		f"FROM {base}",
		*([f"ENV PRESS_TEST_BUILD {fresh}"] if fresh else []),
		"USER root",
		"ENV FRAPPE_DOCKER_BUILD True",
		"ENV LANG C.UTF-8",
		"",
		"# Install essential packages",
		(
			"RUN --mount=type=cache,sharing=locked,target=/var/cache/apt "
			"--mount=type=cache,sharing=locked,target=/var/cache/press-test \\"
		),
		"  date +%s%N >> /var/cache/press-test/runs \\",
		"  && wc -l < /var/cache/press-test/runs > /opt/cache-mount-runs \\",
		f"  && echo essentials ready{failing('pre-essentials')} \\",
		"  `#stage-pre-essentials`",
		"",
		"COPY --chown=root:root supervisord.conf /etc/supervisor/supervisord.conf",
		"",
		f"RUN python3 --version{failing('pre-python')} `#stage-pre-python`",
		"",
		"RUN test -f /usr/bin/mariadb-dump || ln -s /usr/bin/mysqldump /usr/bin/mariadb-dump",
		"",
		"USER frappe",
		"WORKDIR /home/frappe",
		(
			"RUN --mount=type=secret,id=build_token,mode=0444 "
			f"test -s /run/secrets/build_token && echo token mounted{failing('bench-bench')} `#stage-bench-bench`"
		),
		"RUN `#stage-bench-env`",
		"",
		(
			"RUN --mount=type=cache,sharing=locked,target=/home/frappe/.cache,uid=1000,gid=1000 "
			"--mount=type=bind,source=apps/frappe,target=/home/frappe/context/apps/frappe \\"
		),
		(
			"  cp -r /home/frappe/context/apps/frappe/. /home/frappe/frappe-bench/apps/frappe/"
			f"{failing('apps-frappe')} `#stage-apps-frappe`"
		),
		"WORKDIR /home/frappe/frappe-bench",
	]
	for app in apps:
		if app == "frappe":
			continue
		lines += [
			"",
			"RUN --mount=type=cache,sharing=locked,target=/home/frappe/.cache,uid=1000,gid=1000 \\",
			f"  --mount=type=bind,source=apps/{app},target=/home/frappe/context/apps/{app} \\",
			f"  rm -rf apps/{app} && cp -r /home/frappe/context/apps/{app} apps/{app} \\",
			f"  && echo installed {app}{failing(f'apps-{app}')} \\",
			f"  `#stage-apps-{app}`",
		]
	lines += [
		"",
		"COPY --chown=frappe:frappe config /home/frappe/frappe-bench/config",
		"COPY --chown=frappe:frappe apps.txt /home/frappe/frappe-bench/sites/apps.txt",
		"",
		"EXPOSE 8000 9000",
		'CMD ["/usr/local/bin/bench-serve"]',
	]
	return "\n".join(lines) + "\n"


def build_payload(
	build: str,
	group: str,
	repos: list[AppRepo],
	dockerfile: str,
	registry: dict,
	repository: str,
	urls: dict[str, str] | None = None,
	hashes: dict[str, str] | None = None,
	**more,
) -> dict:
	"""``build_parameters`` of deploy_candidate_build.py (Press 010bc70), key for key."""
	urls, hashes = urls or {}, hashes or {}
	payload = {
		"image_repository": repository,
		"image_tag": build,
		"registry": {"url": registry["url"], "username": registry.get("username", ""), "password": ""},
		"no_cache": False,
		"no_push": False,
		"build_token": f"tok-{uuid.uuid4().hex[:12]}",
		"deploy_candidate_build": build,
		"deploy_after_build": True,
		"deploy_on_server": None,
		"dockerfile": base64.b64encode(dockerfile.encode()).decode(),
		"clone_instructions": [
			{
				"app": repo.app,
				"url": urls.get(repo.app, repo.url),
				"release": f"{repo.app}-release-{len(repo.commits)}",
				"source": f"SRC-{repo.app}-{group}",
				"hash": hashes.get(repo.app, repo.commits[-1]),
				"branch": "develop",
			}
			for repo in repos
		],
		"build_name": build,
		"group": group,
		"deploy_candidate_params": {
			"redis_cache_size": 512,
			"is_redisearch_enabled": True,
			"use_rq_workerpool": False,
			"merge_all_rq_queues": False,
			"merge_default_and_short_rq_queues": False,
			"custom_workers": {},
			"custom_workers_group": "",
			"is_code_server_enabled": False,
			"is_ssh_enabled": False,
			"dependencies": {"PYTHON_VERSION": "3.11", "NODE_VERSION": "18.16.0", "BENCH_VERSION": "5.22.6"},
		},
	}
	payload.update(more)
	return payload


class _GitHTTP(http.server.BaseHTTPRequestHandler):
	"""``git http-backend`` behind basic auth with one token, as a private GitHub repository."""

	root: Path
	token: str

	def log_message(self, *args) -> None:
		pass

	def _serve(self) -> None:
		expected = "Basic " + base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
		if self.headers.get("Authorization") != expected:
			self.send_response(401)
			self.send_header("WWW-Authenticate", 'Basic realm="git"')
			self.end_headers()
			return
		path, _, query = self.path.partition("?")
		length = int(self.headers.get("Content-Length") or 0)
		body = self.rfile.read(length) if length else b""
		env = {
			**os.environ,
			"GIT_PROJECT_ROOT": str(self.root),
			"GIT_HTTP_EXPORT_ALL": "1",
			"PATH_INFO": path,
			"QUERY_STRING": query,
			"REQUEST_METHOD": self.command,
			"CONTENT_TYPE": self.headers.get("Content-Type", ""),
			"CONTENT_LENGTH": str(length),
			"REMOTE_USER": "x-access-token",
			"GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
		}
		result = subprocess.run(
			["git", "http-backend"], input=body, env=env, capture_output=True, check=False
		)
		head, _, content = result.stdout.partition(b"\r\n\r\n")
		status = 200
		headers = []
		for line in head.decode().split("\r\n"):
			name, _, value = line.partition(":")
			if name.lower() == "status":
				status = int(value.strip().split()[0])
			elif name:
				headers.append((name, value.strip()))
		self.send_response(status)
		for name, value in headers:
			self.send_header(name, value)
		self.send_header("Content-Length", str(len(content)))
		self.end_headers()
		self.wfile.write(content)

	do_GET = _serve
	do_POST = _serve


def serve_private(root: Path, token: str) -> tuple[http.server.ThreadingHTTPServer, int]:
	"""Serves the bare repositories under ``root`` on 127.0.0.1 to clients with ``token`` only."""
	handler = type("Handler", (_GitHTTP,), {"root": root, "token": token})
	server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
	threading.Thread(target=server.serve_forever, daemon=True).start()
	return server, server.server_address[1]
