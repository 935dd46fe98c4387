"""Press's own deploy flow builds a bench image on a container build server: a Release Group whose app
comes from a git repository, Press's Deploy Candidate Build (Run Remote Builder with the Dockerfile and
clone instructions), BuildKit, the push to the Local Registry, Press's build steps live from the
Dockerfile's stage markers, then Press's Deploy of the built image to an Active Bench. A broken stage
ends as a failed Deploy Candidate Build that names it.

One thing is not Press's own: the Dockerfile. Press renders ``press/docker/Dockerfile``, whose stages
download from Ubuntu's archive, a PPA, GitHub and PyPI; nothing leaves this machine, so the test renders
a Dockerfile of the same shape (stage markers, a BuildKit cache mount, the cloned app bind-mounted) on the
project's stand-in bench image. Everything else (clone instructions, registry settings, steps, callbacks,
deploy) is Press's.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from unittest import mock

import frappe
import requests
from frappe.tests import IntegrationTestCase
from frappe.utils import now_datetime
from press.press.doctype.deploy_candidate_build.deploy_candidate_build import DeployCandidateBuild

from press_selfhosted.tests import support

FRAPPE_VERSION = "15.99.0"


def git(*args: str, cwd: Path) -> str:
	return subprocess.run(
		["git", "-c", "user.name=press-selfhosted tests", "-c", "user.email=tests@localhost", *args],
		cwd=cwd,
		check=True,
		capture_output=True,
		text=True,
	).stdout.strip()


def frappe_repository(root: Path) -> tuple[str, str]:
	"""A bare git repository of a tiny "frappe" (its version in ``frappe/__init__.py``): its file URL
	(owner/repository in the last two segments, as Press reads App Source URLs) and the commit."""
	work, bare = root / "work", root / "press-selfhosted-tests" / "frappe"
	(work / "frappe").mkdir(parents=True)
	(work / "frappe" / "__init__.py").write_text(f'__version__ = "{FRAPPE_VERSION}"\n')
	(work / "pyproject.toml").write_text(f'[project]\nname = "frappe"\nversion = "{FRAPPE_VERSION}"\n')
	git("init", "-q", "-b", "develop", cwd=work)
	git("add", ".", cwd=work)
	git("commit", "-q", "-m", "frappe for the in-bench build", cwd=work)
	bare.parent.mkdir(parents=True)
	git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
	return f"file://{bare}", git("rev-parse", "HEAD", cwd=work)


def dockerfile(base: str, fail_stage: str = "", slow_stage: str = ""):
	"""``DeployCandidateBuild._generate_dockerfile`` for this machine (see the module's docstring)."""

	def generate(build: DeployCandidateBuild) -> str:
		def run(command: str, stage: str) -> str:
			if stage == fail_stage:
				command += ' && echo "ERROR: this stage was made to fail" && exit 3'
			if stage == slow_stage:  # the build's name keeps BuildKit from reusing the stage of a former run
				command += f" && echo {build.name} && sleep 20"
			return f"{command} `#stage-{stage}`"

		lines = [f"FROM {base}", "USER root"]
		lines.append(
			"RUN --mount=type=cache,sharing=locked,target=/var/cache/apt "
			+ run("echo essentials > /opt/essentials", "pre-essentials")
		)
		lines += ["USER frappe", "WORKDIR /home/frappe/frappe-bench"]
		for app in build.candidate.apps:
			lines.append(
				f"RUN --mount=type=bind,source=apps/{app.app},target=/home/frappe/context/apps/{app.app} "
				+ run(
					f"cp -r /home/frappe/context/apps/{app.app}/. apps/{app.app}/",
					f"apps-{app.app}",
				)
			)
		return "\n".join(lines) + "\n"

	return mock.patch.object(DeployCandidateBuild, "_generate_dockerfile", generate)


class TestPressBuilds(IntegrationTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.endpoints = support.prepare()
		support.use_local_registry(cls.endpoints)
		support.use_local_storage(cls.endpoints)
		cls.spec, cls.servers = support.active_cluster(cls.endpoints)
		cls.build_server = cls.servers["Server"]
		frappe.db.set_value("Server", cls.build_server, "use_for_build", 1)
		frappe.db.commit()
		cls.git_root = Path(tempfile.mkdtemp(prefix="press-selfhosted-git-"))
		url, cls.commit = frappe_repository(cls.git_root)
		source = support.frappe_source(url, "develop", cls.commit)
		cls.group = support.release_group(cls.spec, source, build_server=cls.build_server)
		frappe.db.commit()
		cls.started = now_datetime()

	@classmethod
	def tearDownClass(cls):
		support.remove_cluster_containers(cls.endpoints, cls.servers)
		subprocess.run(["rm", "-rf", str(cls.git_root)], check=False)
		super().tearDownClass()

	def start_build(self, fail_stage: str = "", slow_stage: str = "") -> str:
		"""Press's build of a new Deploy Candidate of the group, deployed when it succeeds (as the
		dashboard's Deploy does); the Deploy Candidate Build's name."""
		candidate = frappe.get_doc("Release Group", self.group).create_deploy_candidate(
			validate_pre_candidate_checks=False
		)
		with dockerfile(self.endpoints["images"]["bench"], fail_stage, slow_stage):
			build = frappe.get_doc(
				{
					"doctype": "Deploy Candidate Build",
					"deploy_candidate": candidate.name,
					"group": self.group,
					"team": candidate.team,
					"run_build": 1,
					"deploy_after_build": 1,
				}
			).insert()
		frappe.db.commit()
		self.assertEqual(build.build_server, self.build_server)
		return build.name

	def wait_for_build(self, build: str) -> str:
		return support.wait_until(
			lambda: (
				(status := support.status_of("Deploy Candidate Build", build)) in ("Success", "Failure")
				and status
			),
			self.servers,
			timeout=600,
			what=f"Deploy Candidate Build {build} ended",
		)

	def steps(self, build: str) -> dict[str, str]:
		return {
			f"{row.stage_slug}-{row.step_slug}": row.status
			for row in frappe.get_doc("Deploy Candidate Build", build).build_steps
		}

	def test_1_press_builds_pushes_and_deploys_the_image(self):
		build = self.start_build(slow_stage="apps-frappe")
		# the desk shows the stages as they run: Press reads them from the job's output while it builds
		support.wait_until(
			lambda: (
				(steps := self.steps(build)).get("pre-essentials") == "Success"
				and steps.get("apps-frappe") == "Running"
				and support.status_of("Deploy Candidate Build", build) == "Running"
			),
			self.servers,
			timeout=120,
			what=f"Deploy Candidate Build {build} showing its stages while it builds",
		)
		self.assertEqual(
			self.wait_for_build(build),
			"Success",
			frappe.db.get_value("Deploy Candidate Build", build, "build_error"),
		)
		steps = self.steps(build)
		self.assertEqual(set(steps.values()), {"Success"}, steps)
		for step in ("clone-frappe", "validate-pre-build", "pre-essentials", "apps-frappe", "upload-image"):
			self.assertIn(step, steps)
		image = frappe.db.get_value("Deploy Candidate Build", build, "docker_image")
		client = support.docker_client(self.endpoints)
		repository, tag = image.rsplit(":", 1)
		registry = requests.get(
			f"http://{self.endpoints['registry']['url']}/v2/{repository.split('/', 1)[1]}/tags/list",
			timeout=10,
		).json()
		self.assertIn(tag, registry["tags"])
		# Press deploys what it built: a Bench of this build, Active, running the app at its commit
		bench = support.wait_until(
			lambda: frappe.db.get_value("Bench", {"build": build}),
			self.servers,
			what="the bench of the build",
		)
		support.wait_until(
			lambda: support.status_of("Bench", bench) == "Active", self.servers, what=f"Bench {bench} Active"
		)
		container = client.containers.get(f"{self.spec.container_prefix}-{bench}")
		code = container.exec_run(
			["cat", "apps/frappe/frappe/__init__.py"], workdir="/home/frappe/frappe-bench"
		)
		self.assertEqual(code.output.decode().strip(), f'__version__ = "{FRAPPE_VERSION}"')
		self.assertIn(image, container.image.tags)
		client.close()

	def test_2_a_broken_stage_fails_the_build_and_is_named(self):
		build = self.start_build(fail_stage="apps-frappe")
		self.assertEqual(self.wait_for_build(build), "Failure")
		steps = self.steps(build)
		self.assertEqual(steps["clone-frappe"], "Success")
		self.assertEqual(steps["pre-essentials"], "Success")
		self.assertEqual(steps["apps-frappe"], "Failure", steps)
		self.assertNotIn("Success", {steps[s] for s in steps if s.startswith("upload")})
		self.assertIn("apps-frappe", frappe.db.get_value("Deploy Candidate Build", build, "build_error"))
		# as the Agent reports a failed stage: the job ends, its Build Image step failed, nothing pushed
		job = frappe.get_doc(
			"Agent Job", {"job_type": "Run Remote Builder", "request_data": ("like", f"%{build}%")}
		)
		self.assertTrue(frappe.parse_json(job.data)["build_failed"])
		job_steps = {
			row.step_name: row.status
			for row in frappe.get_all(
				"Agent Job Step", filters={"agent_job": job.name}, fields=["step_name", "status"]
			)
		}
		self.assertEqual(job_steps["Build Image"], "Failure")
		self.assertEqual(job_steps["Push Docker Image"], "Skipped")
		self.assertFalse(frappe.db.exists("Bench", {"build": build}))

	def test_3_nothing_else_failed_in_the_background(self):
		self.assertEqual(support.problems_since(self.started, self.servers), [])
