"""Docker registry (distribution v2 API) client: target, authentication, connection test.

:class:`RegistryClient` speaks the registry HTTP API with bounded timeouts. It answers the
``WWW-Authenticate`` challenges registries send: ``Basic`` (htpasswd registries) and ``Bearer``
(token servers, per scope). Requests go through :meth:`RegistryClient.request`, which later
additions (tag listing, manifest deletion) reuse with a ``scope`` such as
``repository:press/bench:pull``.

Scheme: an explicit ``https://`` or ``http://`` is used as given. Without a scheme the client uses
HTTPS; for a loopback registry, or one marked insecure, it falls back to plain HTTP when the port
does not speak TLS (as Docker does). A CA bundle given as PEM text lives in a temporary file for as
long as the client is open.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import asdict, dataclass, field, replace

from press_selfhosted.engine import validation
from press_selfhosted.engine.clients.cabundle import ca_bundle_path, speaks_plain_http, tls_failure_fix
from press_selfhosted.engine.errors import (
	RegistryAuthError,
	RegistryError,
	RegistryTLSError,
	RegistryUnreachable,
)

__all__ = [
	"ConnectionReport",
	"RegistryClient",
	"RegistryTarget",
	"parse_challenge",
	"test_connection",
]

API_VERSION_HEADER = "Docker-Distribution-Api-Version"
USER_AGENT = "press-selfhosted"


@dataclass(frozen=True)
class RegistryTarget:
	"""A registry and how to reach it. ``insecure`` allows plain ``http://`` for a non-loopback host."""

	url: str
	namespace: str = ""
	username: str = ""
	password: str = field(default="", repr=False)
	verify_tls: bool = True
	ca_bundle: str | None = field(default=None, repr=False)
	insecure: bool = False
	connect_timeout: float = 5
	read_timeout: float = 15

	@property
	def address(self) -> validation.RegistryAddress:
		return validation.validate_registry_url(self.url, allow_insecure_http=self.insecure)

	def validated(self) -> RegistryTarget:
		"""A copy with every field checked and normalised; raises ``ValidationError``."""
		username, password = validation.validate_registry_credentials(self.username, self.password)
		ca_bundle = None
		if self.ca_bundle and self.ca_bundle.strip():
			ca_bundle = (
				validation.validate_ca_bundle(self.ca_bundle)
				if "-----BEGIN " in self.ca_bundle
				else self.ca_bundle.strip()
			)
		return replace(
			self,
			url=self.address.url,
			namespace=validation.validate_registry_namespace(self.namespace),
			username=username,
			password=password,
			ca_bundle=ca_bundle,
			connect_timeout=validation.validate_connect_timeout(self.connect_timeout),
		)

	def repository(self, image: str) -> str:
		"""``<namespace>/<image>`` (or ``<image>`` without a namespace)."""
		return f"{self.namespace}/{image}" if self.namespace else image

	def image_reference(self, image: str, tag: str) -> str:
		"""``host[:port]/<namespace>/<image>:<tag>``, as Docker pulls it."""
		return f"{self.address.host_port}/{self.repository(image)}:{tag}"


@dataclass
class ConnectionReport:
	"""What a successful connection test found."""

	url: str
	auth: str
	api_version: str | None = None
	elapsed_ms: int = 0
	message: str = ""

	def as_dict(self) -> dict:
		return asdict(self)


_CHALLENGE_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str | None) -> tuple[str, dict[str, str]]:
	"""``'Bearer realm="https://a/token",service="r"'`` -> ``("bearer", {"realm": ..., "service": ...})``."""
	if not header:
		return "", {}
	scheme, _, rest = header.strip().partition(" ")
	params = {}
	for match in _CHALLENGE_PARAM.finditer(rest):
		value = match.group(2) if match.group(2) is not None else match.group(3)
		params[match.group(1).lower()] = value.replace('\\"', '"')
	return scheme.lower(), params


class RegistryClient:
	"""A session with one registry. Use as a context manager (it owns a temporary CA file)."""

	def __init__(self, target: RegistryTarget):
		self.target = target.validated()
		self.address = self.target.address
		self._stack = contextlib.ExitStack()
		self._session = None
		self._verify: bool | str = True
		self._base_url: str | None = None
		self._use_basic = False
		self._tokens: dict[str, str] = {}
		self.auth_used = "anonymous"

	# -- lifecycle --------------------------------------------------------------------------------

	def __enter__(self) -> RegistryClient:  # noqa: PYI034
		self.open()
		return self

	def __exit__(self, *exc_info) -> None:
		self.close()

	def open(self) -> None:
		if self._session is not None:
			return
		import requests

		ca_path = self._stack.enter_context(ca_bundle_path(self.target.ca_bundle))
		self._verify = (ca_path or True) if self.target.verify_tls else False
		self._session = self._stack.enter_context(requests.Session())
		self._session.headers["User-Agent"] = USER_AGENT

	def close(self) -> None:
		self._stack.close()
		self._session = None

	# -- transport --------------------------------------------------------------------------------

	@property
	def base_url(self) -> str:
		"""``scheme://host[:port]``, discovered on first use."""
		if self._base_url is None:
			self._base_url = self._discover_base_url()
		return self._base_url

	def _candidate_schemes(self) -> list[str]:
		if self.address.scheme:
			return [self.address.scheme]
		if self.address.is_loopback or self.target.insecure:
			return ["https", "http"]
		return ["https"]

	def _discover_base_url(self) -> str:
		schemes = self._candidate_schemes()
		for index, scheme in enumerate(schemes):
			url = self.address.base_url(scheme)
			try:
				self._send("GET", f"{url}/v2/", url)
			except RegistryTLSError as exc:
				if index + 1 < len(schemes) and speaks_plain_http(exc.__cause__ or exc):
					continue
				raise
			return url
		raise RegistryError(f"No usable scheme for {self.address.url}.")  # pragma: no cover

	def _send(self, method: str, url: str, base_url: str, **kwargs):
		import requests

		self.open()
		timeout = (self.target.connect_timeout, self.target.read_timeout)
		try:
			return self._session.request(
				method,
				url,
				timeout=timeout,
				verify=self._verify,
				allow_redirects=kwargs.pop("allow_redirects", True),
				**kwargs,
			)
		except requests.exceptions.SSLError as exc:
			raise self._tls_error(base_url, exc) from exc
		except requests.exceptions.ConnectTimeout:
			raise RegistryUnreachable(
				f"The registry {base_url} did not answer within {self.target.connect_timeout:g} s. Fix: check the host "
				"and port in URL, that the registry runs, and that no firewall blocks the port from this server."
			) from None
		except requests.exceptions.ReadTimeout:
			raise RegistryUnreachable(
				f"The registry {base_url} accepted the connection but sent no answer within {self.target.read_timeout:g} s. "
				"Fix: check that URL points at the registry's API port and that the registry is healthy."
			) from None
		except requests.exceptions.ConnectionError as exc:
			raise RegistryUnreachable(
				f"Cannot reach the registry {base_url}: {self._reason(exc)}. Fix: check the host and port in URL, that "
				"the registry runs, and that no firewall blocks the port from this server."
			) from None
		except requests.exceptions.RequestException as exc:
			raise RegistryError(f"Request to the registry {base_url} failed: {self._reason(exc)}.") from None

	def _reason(self, exc: Exception) -> str:
		text = str(exc)
		short = re.search(r"\[SSL: [A-Z_]+\] [^'\")(]+|\[Errno -?\d+\] [^'\")\]]+", text)
		if short:
			text = short.group(0).strip()
		if self.target.password:
			text = text.replace(self.target.password, "(hidden)")
		return text

	def _tls_error(self, base_url: str, exc: Exception) -> RegistryTLSError:
		reason = self._reason(exc)
		fix = tls_failure_fix(
			reason,
			plain_http=speaks_plain_http(exc),
			plain_http_fix="the registry does not speak TLS on this port: write http:// in URL (loopback, or tick "
			"Insecure), or use its HTTPS port",
			server="the registry",
			url_field="URL",
		)
		return RegistryTLSError(f"TLS with the registry {base_url} failed: {reason}. Fix: {fix}.")

	# -- authentication ---------------------------------------------------------------------------

	def _credentials(self) -> tuple[str, str] | None:
		if self.target.username:
			return (self.target.username, self.target.password)
		return None

	def _auth_headers(self, scope: str | None) -> dict[str, str]:
		token = self._tokens.get(scope or "")
		if token:
			return {"Authorization": f"Bearer {token}"}
		return {}

	def _fetch_token(self, params: dict[str, str], scope: str | None) -> str:
		realm = params.get("realm")
		if not realm:
			raise RegistryError(
				f"The registry {self.base_url} asked for a token without naming a token server (realm)."
			)
		query = {}
		if params.get("service"):
			query["service"] = params["service"]
		if scope:
			query["scope"] = scope
		credentials = self._credentials()
		if credentials:
			query["account"] = credentials[0]
		response = self._send("GET", realm, realm, params=query, auth=credentials)
		if response.status_code in (401, 403):
			raise self._rejected() if credentials else self._needs_credentials()
		if response.status_code != 200:
			raise RegistryError(
				f"The registry's token server {realm} answered HTTP {response.status_code}. Fix: check the registry's token service."
			)
		try:
			body = response.json()
		except ValueError:
			body = {}
		token = body.get("token") or body.get("access_token")
		if not token:
			raise RegistryError(f"The registry's token server {realm} answered without a token.")
		return token

	def _rejected(self) -> RegistryAuthError:
		return RegistryAuthError(
			f"The registry {self.base_url} rejected the user name or password for {self.target.username!r}. "
			"Fix: check Username and Password (for an htpasswd registry, the entry in its htpasswd file)."
		)

	def _needs_credentials(self) -> RegistryAuthError:
		return RegistryAuthError(
			f"The registry {self.base_url} requires authentication. Fix: fill Username and Password."
		)

	def request(
		self,
		method: str,
		path: str,
		*,
		scope: str | None = None,
		expect: tuple[int, ...] | None = None,
		**kwargs,
	):
		"""Sends ``method`` to ``path`` (e.g. ``/v2/``) and answers authentication challenges.

		``scope`` is the token scope for Bearer registries (``repository:<name>:pull``). Returns the
		``requests.Response``; with ``expect``, any other status raises RegistryError."""
		base_url = self.base_url
		url = f"{base_url}{path}"
		headers = dict(kwargs.pop("headers", None) or {})
		credentials = self._credentials()
		for _attempt in range(3):
			auth = credentials if (self._use_basic and credentials) else None
			response = self._send(
				method, url, base_url, headers={**headers, **self._auth_headers(scope)}, auth=auth, **kwargs
			)
			if response.status_code != 401:
				break
			challenge, params = parse_challenge(response.headers.get("WWW-Authenticate"))
			if challenge == "basic":
				if not credentials:
					raise self._needs_credentials()
				if self._use_basic:
					raise self._rejected()
				self._use_basic = True
				self.auth_used = "basic"
			elif challenge == "bearer":
				if (scope or "") in self._tokens:
					raise self._rejected() if credentials else self._needs_credentials()
				self._tokens[scope or ""] = self._fetch_token(params, scope)
				self.auth_used = "token"
			else:
				raise (self._rejected() if credentials else self._needs_credentials())
		else:  # pragma: no cover - the loop breaks or raises
			raise self._rejected()
		if expect is not None and response.status_code not in expect:
			raise RegistryError(
				f"The registry {base_url} answered HTTP {response.status_code} to {method} {path}: {response.text[:200]}"
			)
		return response

	# -- checks -----------------------------------------------------------------------------------

	def check(self) -> ConnectionReport:
		"""``GET /v2/`` with authentication: proves the URL is a registry and the credentials work."""
		started = time.monotonic()
		response = self.request("GET", "/v2/")
		if response.status_code == 404:
			raise RegistryError(
				f"{self.base_url} answered 404 at /v2/: it is not a Docker registry (v2 API). Fix: check the host and port in URL."
			)
		api_version = response.headers.get(API_VERSION_HEADER)
		if response.status_code != 200 and not api_version:
			raise RegistryError(
				f"{self.base_url} answered HTTP {response.status_code} at /v2/ and does not announce the registry API: "
				"it is not a Docker registry (v2). Fix: check the host and port in URL."
			)
		if response.status_code == 403:
			raise RegistryAuthError(
				f"The registry {self.base_url} refused access to /v2/ for {self.target.username or 'anonymous'} (403). "
				"Fix: use an account allowed to pull and push."
			)
		if response.status_code != 200:
			raise RegistryError(
				f"The registry {self.base_url} answered HTTP {response.status_code} at /v2/. Fix: check that URL points at a Docker registry."
			)
		elapsed = int((time.monotonic() - started) * 1000)
		how = {"anonymous": "anonymously", "basic": "with basic authentication", "token": "with a token"}[
			self.auth_used
		]
		return ConnectionReport(
			url=self.base_url,
			auth=self.auth_used,
			api_version=api_version,
			elapsed_ms=elapsed,
			message=f"Connected to the registry {self.base_url} {how} ({api_version or 'API version not announced'}, {elapsed} ms).",
		)


def test_connection(target: RegistryTarget) -> ConnectionReport:
	"""Checks that ``target`` answers the registry API at ``/v2/`` with its credentials.

	Raises RegistryUnreachable, RegistryTLSError, RegistryAuthError, RegistryError or ValidationError."""
	with RegistryClient(target) as client:
		return client.check()


test_connection.__test__ = False  # not a pytest test, whatever imports it
