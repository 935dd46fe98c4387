"""Docker Engine clients for container servers, one per server, with errors that name the server.

A container server is reached through its ``docker_socket``: ``unix:///path``, ``tcp://host:port``
(TLS client certificates when given) or ``ssh://[user@]host[:port]`` (docker-py's paramiko transport).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import docker
import docker.errors
import docker.tls
import requests.exceptions

from press_selfhosted.engine.errors import DockerOperationFailed, DockerUnreachable

T = TypeVar("T")


@dataclass(frozen=True)
class DockerHost:
	"""Where a server's Docker Engine answers. ``server`` is the Press document name, for messages."""

	server: str
	socket: str
	tls_ca_file: str | None = None
	tls_cert_file: str | None = None
	tls_key_file: str | None = None
	timeout: int = 120
	# a digest of the TLS files' content: rotated certificates at the same paths make a new client
	tls_fingerprint: str = ""


class _APIClient(docker.APIClient):
	"""docker-py's API client, deaf to the environment: requests lets ``REQUESTS_CA_BUNDLE`` or
	``CURL_CA_BUNDLE`` (set in many images) replace the CA file of the server's TLSConfig, and every
	``tcp://`` TLS socket then fails verification; env proxies must not carry Docker traffic either."""

	@property
	def trust_env(self) -> bool:
		return False

	@trust_env.setter
	def trust_env(self, value: bool) -> None:
		pass  # requests.Session.__init__ sets it


class _DockerClient(docker.DockerClient):
	def __init__(self, **kwargs):
		self.api = _APIClient(**kwargs)  # all that docker.DockerClient.__init__ does


def _tls_config(host: DockerHost) -> docker.tls.TLSConfig | bool:
	if not host.socket.startswith("tcp://") or not host.tls_cert_file:
		return False
	return docker.tls.TLSConfig(
		client_cert=(host.tls_cert_file, host.tls_key_file),
		ca_cert=host.tls_ca_file,
		verify=bool(host.tls_ca_file),
	)


@contextlib.contextmanager
def docker_errors(host: DockerHost, action: str) -> Iterator[None]:
	"""Turn docker-py and transport exceptions into errors that name the server, socket and action."""
	try:
		yield
	except docker.errors.APIError as error:
		raise DockerOperationFailed(host, action, error.explanation or str(error)) from error
	except docker.errors.DockerException as error:
		raise DockerUnreachable(host, action, str(error)) from error
	except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
		raise DockerUnreachable(host, action, type(error).__name__ + ": " + str(error)) from error
	except (FileNotFoundError, ConnectionError, TimeoutError) as error:
		raise DockerUnreachable(host, action, str(error)) from error


class DockerHosts:
	"""Keeps one client per server for the life of a process; safe to share between threads."""

	def __init__(self, factory: Callable[[DockerHost], docker.DockerClient] | None = None):
		self._factory = factory or self._connect
		self._clients: dict[DockerHost, docker.DockerClient] = {}
		self._lock = threading.Lock()

	@staticmethod
	def _connect(host: DockerHost) -> docker.DockerClient:
		with docker_errors(host, "connecting"):
			return _DockerClient(
				base_url=host.socket, tls=_tls_config(host), timeout=host.timeout, use_ssh_client=False
			)

	def client(self, host: DockerHost) -> docker.DockerClient:
		with self._lock:
			client = self._clients.get(host)
			if client is None:
				client = self._clients[host] = self._factory(host)
			return client

	def call(self, host: DockerHost, action: str, operation: Callable[[docker.DockerClient], T]) -> T:
		"""Run ``operation(client)`` with errors that say which server, socket and action failed."""
		with docker_errors(host, action):
			return operation(self.client(host))

	def close(self) -> None:
		with self._lock:
			for client in self._clients.values():
				client.close()
			self._clients.clear()
