"""Pure validation of the values an operator types: site names, addresses, Docker sockets, S3 and
registry settings.

Each ``validate_*`` / ``parse_*`` function either returns the value (normalised where a
normalisation is safe, e.g. an IPv6 address in its compressed form) or raises
:class:`~press_selfhosted.engine.errors.ValidationError` naming the field, the bad value, the rule
and the fix. Nothing here touches the network, Frappe or Press.

Decisions worth knowing (the README and the DocType descriptions repeat them):

* Site names are refused, not lowercased: a site's name is its database key and its URL.
* Internal networks default to RFC 1918, the shared address space 100.64.0.0/10 (carrier-grade
  NAT, also what WireGuard / Tailscale overlays hand out) and IPv6 unique local addresses
  fc00::/7. Loopback and link-local are not internal networks: another machine cannot reach them.
  The site config key ``press_selfhosted_internal_networks`` (a list of CIDRs) *replaces* the
  default list.
* A container prefix must leave room for ``<prefix>-<bench name><suffix>`` to stay one DNS label
  (63 characters) so it can be the container's hostname: Press bench names are at most 32
  characters and the longest suffix the engine appends is 8 characters (e.g. ``-backend``), so a
  prefix has at most 22 characters. Two hyphens in a row are refused (``a--b`` as well as
  ``a--``): a hyphen separates the prefix from the bench name, and ``xx--`` is the reserved
  IDNA form in DNS labels.
* A registry URL without a scheme means HTTPS (as Docker does); plain ``http://`` is accepted only
  for a loopback registry or when the operator marks the registry insecure.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from press_selfhosted.engine.errors import ValidationError

__all__ = [
	"CONTAINER_SUFFIX_RESERVE",
	"DEFAULT_INTERNAL_NETWORKS",
	"DOCKER_SOCKET_FORMS",
	"INTERNAL_NETWORKS_CONFIG_KEY",
	"MAX_BENCH_NAME_LENGTH",
	"MAX_CONTAINER_PREFIX_LENGTH",
	"DockerSocket",
	"RegistryAddress",
	"parse_docker_socket",
	"parse_internal_networks",
	"validate_access_key",
	"validate_addressing_style",
	"validate_app_name",
	"validate_bench_name",
	"validate_bucket_name",
	"validate_ca_bundle",
	"validate_connect_timeout",
	"validate_container_prefix",
	"validate_endpoint_url",
	"validate_fqdn",
	"validate_ip",
	"validate_object_prefix",
	"validate_private_ip",
	"validate_region",
	"validate_registry_credentials",
	"validate_registry_namespace",
	"validate_registry_url",
	"validate_secret_key",
]

INTERNAL_NETWORKS_CONFIG_KEY = "press_selfhosted_internal_networks"
DEFAULT_INTERNAL_NETWORKS: tuple[str, ...] = (
	"10.0.0.0/8",
	"172.16.0.0/12",
	"192.168.0.0/16",
	"100.64.0.0/10",
	"fc00::/7",
)

MAX_FQDN_LENGTH = 253
MAX_LABEL_LENGTH = 63
MAX_BENCH_NAME_LENGTH = 32
CONTAINER_SUFFIX_RESERVE = 8
MAX_CONTAINER_PREFIX_LENGTH = MAX_LABEL_LENGTH - 1 - MAX_BENCH_NAME_LENGTH - CONTAINER_SUFFIX_RESERVE

DOCKER_SOCKET_FORMS = (
	"unix:///var/run/docker.sock, tcp://HOST:PORT (e.g. tcp://10.0.0.5:2376) or ssh://[USER@]HOST[:PORT]"
)
UNIX_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PREFIX_CHARS = re.compile(r"[a-z0-9-]+")
_SSH_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}", re.IGNORECASE)
_BUCKET_CHARS = re.compile(r"[a-z0-9.-]+")
_REGION = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}", re.IGNORECASE)
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")

BUCKET_FORBIDDEN_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_FORBIDDEN_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
MAX_NAMESPACE_LENGTH = 128
MAX_OBJECT_PREFIX_LENGTH = 256


def _has_upper(value: str) -> bool:
	return any(c.isupper() for c in value)


def _valid(validator, candidate: str, field: str, refused: str) -> str | None:
	"""``candidate`` when ``validator`` accepts it: a fix never suggests a value that would be refused too
	(nor the ``refused`` value itself: some uppercase letters have no lowercase form)."""
	if candidate == refused:
		return None
	try:
		return validator(candidate, field)
	except ValidationError:
		return None


def _use(suggestion: str | None, otherwise: str) -> str:
	return f"use {suggestion!r}" if suggestion else otherwise


def _text(value: object, field: str, what: str, example: str, *, required: bool = True) -> str:
	"""The value as a string with surrounding whitespace removed; refuses non-strings and, when
	``required``, empty values."""
	if value is None:
		value = ""
	if not isinstance(value, str):
		raise ValidationError(field, value, f"{what} must be text", f"enter it as text, e.g. {example}")
	value = value.strip()
	if required and not value:
		raise ValidationError(field, value, f"{what} is required", f"enter one, e.g. {example}")
	return value


# --- site names ----------------------------------------------------------------------------------


def validate_fqdn(value: object, field: str = "name") -> str:
	"""A fully qualified, lowercase domain name of at least two labels (``site1.platform.local``).

	Labels are 1-63 letters, digits or hyphens, neither starting nor ending with a hyphen; the
	whole name is at most 253 characters; the last label is not all digits (that would be an IP
	address). Returns the value unchanged."""
	example = "site1.example.com"
	if not isinstance(value, str) or not value:
		raise ValidationError(
			field, value, "a fully qualified domain name is required", f"enter one, e.g. {example}"
		)
	if value != value.strip() or any(c.isspace() for c in value):
		raise ValidationError(field, value, "a domain name has no spaces", "remove the spaces")
	if _has_upper(value):
		raise ValidationError(
			field,
			value,
			"a site name must be lowercase",
			_use(_valid(validate_fqdn, value.lower(), field, value), "use lowercase letters only"),
		)
	if value.endswith("."):
		raise ValidationError(
			field,
			value,
			"the name must not end with a dot",
			_use(_valid(validate_fqdn, value.rstrip("."), field, value), "remove the final dot"),
		)
	if len(value) > MAX_FQDN_LENGTH:
		raise ValidationError(
			field,
			value,
			f"a domain name has at most {MAX_FQDN_LENGTH} characters (this one has {len(value)})",
			"choose a shorter name",
		)
	labels = value.split(".")
	if len(labels) < 2:
		raise ValidationError(
			field,
			value,
			"a fully qualified name has at least two labels separated by a dot",
			f"add the domain, e.g. {value}.example.com",
		)
	for label in labels:
		if not label:
			raise ValidationError(
				field,
				value,
				"the name has an empty label (a leading dot or two dots in a row)",
				"remove the extra dot",
			)
		if len(label) > MAX_LABEL_LENGTH:
			raise ValidationError(
				field,
				value,
				f"the label {label[:20]!r}... has {len(label)} characters, at most {MAX_LABEL_LENGTH} are allowed",
				"shorten that part of the name",
			)
		if not _PREFIX_CHARS.fullmatch(label):
			raise ValidationError(
				field,
				value,
				f"the label {label!r} has characters other than a-z, 0-9 and '-' (underscores, dots and accents are not allowed)",
				"use only lowercase letters, digits and hyphens; write internationalised names in their xn-- form",
			)
		if not _LABEL.fullmatch(label):
			raise ValidationError(
				field,
				value,
				f"the label {label!r} starts or ends with a hyphen",
				"start and end every label with a letter or digit",
			)
	if labels[-1].isdigit():
		raise ValidationError(
			field,
			value,
			"the last label is all digits, so the name reads as an IP address",
			"end the name with a real domain, e.g. .example.com",
		)
	return value


# --- bench and app names -------------------------------------------------------------------------

_BENCH_NAME = re.compile(rf"[a-z0-9](?:[a-z0-9-]{{0,{MAX_BENCH_NAME_LENGTH - 2}}}[a-z0-9])?")
_APP_NAME = re.compile(r"[a-z][a-z0-9_]{0,139}")


def validate_bench_name(value: object, field: str = "bench") -> str:
	"""A Press bench name (``bench-0001-000001-f1``): it becomes part of container, volume and host
	names, so lowercase letters, digits and inner hyphens, at most 32 characters (Press's own limit)."""
	if not isinstance(value, str) or not _BENCH_NAME.fullmatch(value):
		raise ValidationError(
			field,
			value if isinstance(value, str) and len(value) <= 80 else type(value).__name__,
			f"a bench name is 1 to {MAX_BENCH_NAME_LENGTH} lowercase letters, digits and inner hyphens",
			"send the Bench's name as Press makes it, e.g. bench-0001-000001-f1",
		)
	return value


def validate_app_name(value: object, field: str = "app") -> str:
	"""A Frappe app (a Python package name: lowercase letters, digits, underscores)."""
	if not isinstance(value, str) or not _APP_NAME.fullmatch(value):
		raise ValidationError(
			field,
			value if isinstance(value, str) and len(value) <= 80 else type(value).__name__,
			"an app name is a Python package name: a lowercase letter, then letters, digits or underscores",
			"send the App's name, e.g. erpnext",
		)
	return value


# --- IP addresses --------------------------------------------------------------------------------


def validate_ip(value: object, field: str = "ip") -> str:
	"""An IPv4 or IPv6 host address; returns its canonical form (IPv6 compressed)."""
	text = _text(value, field, "an IP address", "10.0.0.5 or 2001:db8::5")
	if "%" in text:
		raise ValidationError(
			field,
			value,
			"an address with a zone index (%interface) cannot be used between machines",
			"remove the %... part and use a routable address",
		)
	if "/" in text:
		raise ValidationError(
			field,
			value,
			"a single address is expected, not a network",
			f"use the address only, e.g. {text.split('/')[0]}",
		)
	try:
		address = ipaddress.ip_address(text)
	except ValueError:
		raise ValidationError(
			field,
			value,
			"not an IPv4 or IPv6 address (IPv4 is four numbers 0-255 without leading zeros)",
			"enter an address such as 10.0.0.5 or 2001:db8::5",
		) from None
	if address.is_unspecified or address.is_multicast:
		raise ValidationError(
			field,
			value,
			"an unspecified or multicast address is not the address of a machine",
			"enter the machine's own address",
		)
	return str(address)


def validate_bind_address(value: object, field: str) -> str:
	"""Where a service listens on its host: an address of the host, or 0.0.0.0 / :: for all of them."""
	text = _text(value, field, "a listening address", "0.0.0.0 or 10.0.0.5")
	try:
		unspecified = ipaddress.ip_address(text).is_unspecified
	except ValueError:
		unspecified = False
	return str(ipaddress.ip_address(text)) if unspecified else validate_ip(text, field)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_internal_networks(
	value: object = None, field: str = INTERNAL_NETWORKS_CONFIG_KEY
) -> tuple[Network, ...]:
	"""The internal networks: ``None``/empty gives :data:`DEFAULT_INTERNAL_NETWORKS`; otherwise a
	list of CIDRs (or a JSON list / comma-separated string of them), which replaces the default."""
	if value is None or value == "" or value == [] or value == ():
		value = DEFAULT_INTERNAL_NETWORKS
	if isinstance(value, str):
		text = value.strip()
		if text.startswith("["):
			try:
				value = json.loads(text)
			except ValueError:
				raise ValidationError(
					field, value, "not a JSON list of networks", 'write it as ["10.0.0.0/8", "fc00::/7"]'
				) from None
		else:
			value = [part for part in (p.strip() for p in text.split(",")) if part]
	if not isinstance(value, list | tuple):
		raise ValidationError(
			field, value, "must be a list of networks in CIDR form", 'write it as ["10.0.0.0/8", "fc00::/7"]'
		)
	networks = []
	for item in value:
		if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
			networks.append(item)
			continue
		if not isinstance(item, str):
			raise ValidationError(
				field, item, "each network must be a CIDR string", 'write it as "10.0.0.0/8"'
			)
		try:
			networks.append(ipaddress.ip_network(item.strip(), strict=True))
		except ValueError:
			try:
				loose = ipaddress.ip_network(item.strip(), strict=False)
			except ValueError:
				raise ValidationError(
					field, item, "not a network in CIDR form", 'write networks as "10.0.0.0/8" or "fd00::/8"'
				) from None
			raise ValidationError(
				field, item, "the network has host bits set", f"use the network address: {loose}"
			) from None
	if not networks:
		raise ValidationError(
			field,
			value,
			"the list of internal networks is empty",
			"list at least one network, e.g. 10.0.0.0/8",
		)
	return tuple(networks)


def validate_private_ip(
	value: object,
	networks: Iterable[str | Network] | None = DEFAULT_INTERNAL_NETWORKS,
	field: str = "private_ip",
) -> str:
	"""An IP address inside one of the internal ``networks``; returns its canonical form."""
	address = ipaddress.ip_address(validate_ip(value, field))
	parsed = parse_internal_networks(list(networks) if networks is not None else None)
	if not any(address.version == net.version and address in net for net in parsed):
		listed = ", ".join(str(n) for n in parsed)
		raise ValidationError(
			field,
			value,
			f"a private IP must be inside the internal networks ({listed})",
			f"enter the server's address on the internal network, or list its network in the site config key {INTERNAL_NETWORKS_CONFIG_KEY}",
		)
	return str(address)


# --- container prefix ----------------------------------------------------------------------------


def _suggest_prefix(value: str) -> str | None:
	suggestion = re.sub(r"[^a-z0-9]+", "-", value.lower())
	suggestion = re.sub(r"-+", "-", suggestion).strip("-")
	suggestion = suggestion.lstrip("0123456789-")[:MAX_CONTAINER_PREFIX_LENGTH].rstrip("-")
	return suggestion or None


def validate_container_prefix(value: object, field: str = "container_prefix") -> str:
	"""Lowercase letters, digits and single hyphens; starts with a letter, ends with a letter or
	digit; at most :data:`MAX_CONTAINER_PREFIX_LENGTH` characters so that
	``<prefix>-<bench name><suffix>`` stays one DNS label and a valid Docker container name."""
	text = _text(value, field, "a container prefix", "erp-cloud")
	suggestion = _suggest_prefix(text)
	if suggestion:
		suggestion = _valid(validate_container_prefix, suggestion, field, text)
	fix_suffix = f" (e.g. {suggestion!r})" if suggestion else ""
	if _has_upper(text):
		raise ValidationError(
			field, value, "a container prefix must be lowercase", f"use lowercase letters{fix_suffix}"
		)
	if not _PREFIX_CHARS.fullmatch(text):
		raise ValidationError(
			field,
			value,
			"only lowercase letters, digits and hyphens are allowed (no underscores, dots or spaces)",
			f"replace the other characters with hyphens{fix_suffix}",
		)
	if not text[0].isalpha():
		raise ValidationError(
			field, value, "a container prefix must start with a letter", f"start it with a letter{fix_suffix}"
		)
	if text.endswith("-"):
		raise ValidationError(
			field,
			value,
			"a container prefix must end with a letter or a digit",
			f"remove the trailing hyphen{fix_suffix}",
		)
	if "--" in text:
		raise ValidationError(
			field,
			value,
			"two hyphens in a row are not allowed (a hyphen separates the prefix from the bench name)",
			f"use single hyphens{fix_suffix}",
		)
	if len(text) > MAX_CONTAINER_PREFIX_LENGTH:
		raise ValidationError(
			field,
			value,
			f"at most {MAX_CONTAINER_PREFIX_LENGTH} characters (this one has {len(text)}), so that "
			f"<prefix>-<bench name, up to {MAX_BENCH_NAME_LENGTH}><suffix, up to {CONTAINER_SUFFIX_RESERVE}> "
			f"fits in a {MAX_LABEL_LENGTH}-character hostname",
			f"shorten it{fix_suffix}",
		)
	return text


# --- hosts and ports (shared by the socket and URL parsers) --------------------------------------


def _host(raw: str | None, field: str, value: object, fix: str, *, allow_single_label: bool = True) -> str:
	"""A hostname (lowercased) or an IP literal (IPv6 without brackets)."""
	if not raw:
		raise ValidationError(field, value, "the host is missing", fix)
	host = raw.lower()
	try:
		return str(ipaddress.ip_address(host))
	except ValueError:
		pass
	host = host.removesuffix(".")
	labels = host.split(".")
	if len(host) > MAX_FQDN_LENGTH or not all(_HOST_LABEL.fullmatch(label) for label in labels):
		raise ValidationError(
			field,
			value,
			f"{raw!r} is not a valid hostname or IP address (letters, digits, hyphens and dots)",
			fix,
		)
	if not allow_single_label and len(labels) < 2:
		raise ValidationError(field, value, f"{raw!r} is a single-label hostname", fix)
	return host


def _split(text: str, field: str, value: object, fix: str):
	try:
		return urlsplit(text)
	except ValueError as error:
		raise ValidationError(field, value, f"not a valid URL ({error})", fix) from None


def validate_limit(value: object, field: str, maximum: int) -> int:
	"""A count asked for (``limit`` of a list), 1 to ``maximum``."""
	try:
		limit = int(str(value).strip())
	except ValueError:
		raise ValidationError(field, value, "not a whole number", f"send 1 to {maximum}") from None
	if not 1 <= limit <= maximum:
		raise ValidationError(field, value, f"out of range 1 to {maximum}", f"send 1 to {maximum}")
	return limit


def validate_port(value: object, field: str) -> int:
	"""A TCP port, 1 to 65535 (as a number or its text, e.g. from a site config key)."""
	try:
		port = int(str(value).strip())
	except ValueError:
		port = 0
	if not 1 <= port <= 65535:
		raise ValidationError(
			field, value, "a port is a number from 1 to 65535", "enter a number such as 80 or 8080"
		)
	return port


def _format_host(host: str) -> str:
	return f"[{host}]" if ":" in host else host


def _port(parts, field: str, value: object, fix: str) -> int | None:
	try:
		port = parts.port
	except ValueError:
		raise ValidationError(field, value, "the port must be a number from 1 to 65535", fix) from None
	if port is not None and not 1 <= port <= 65535:
		raise ValidationError(field, value, "the port must be a number from 1 to 65535", fix)
	if port is None and parts.netloc.endswith(":"):
		raise ValidationError(field, value, "the port is empty", fix)
	return port


# --- Docker socket -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DockerSocket:
	"""A parsed ``docker_socket``: ``unix`` (path), ``tcp`` (host, port) or ``ssh`` (user, host, port)."""

	scheme: str
	host: str | None = None
	port: int | None = None
	path: str | None = None
	user: str | None = None

	@property
	def url(self) -> str:
		"""The normalised URL, as docker-py's ``base_url`` accepts it."""
		if self.scheme == "unix":
			return f"unix://{self.path}"
		netloc = _format_host(self.host or "")
		if self.user:
			netloc = f"{self.user}@{netloc}"
		if self.port is not None:
			netloc = f"{netloc}:{self.port}"
		return f"{self.scheme}://{netloc}"


def parse_docker_socket(value: object, field: str = "docker_socket") -> DockerSocket:
	"""``unix:///absolute/path``, ``tcp://host:port`` or ``ssh://[user@]host[:port]``; every refusal
	lists these accepted forms."""
	try:
		return _parse_docker_socket(value, field)
	except ValidationError as error:
		if DOCKER_SOCKET_FORMS in error.fix:
			raise
		raise ValidationError(
			error.field, error.value, error.rule, f"{error.fix} (accepted forms: {DOCKER_SOCKET_FORMS})"
		) from None


def _parse_docker_socket(value: object, field: str) -> DockerSocket:
	fix = f"use one of: {DOCKER_SOCKET_FORMS}"
	text = _text(value, field, "a Docker socket", "unix:///var/run/docker.sock")
	if any(c.isspace() or ord(c) < 32 for c in text):
		raise ValidationError(field, value, "a Docker socket URL has no spaces or control characters", fix)
	scheme, sep, _ = text.partition("://")
	if not sep or scheme.lower() not in ("unix", "tcp", "ssh"):
		raise ValidationError(
			field, value, "not a Docker socket URL: the scheme must be unix://, tcp:// or ssh://", fix
		)
	scheme = scheme.lower()
	parts = _split(text, field, value, fix)
	if parts.query or parts.fragment or "?" in text or "#" in text:
		raise ValidationError(field, value, "a Docker socket URL has no query (?) or fragment (#)", fix)

	if scheme == "unix":
		path = text[len("unix://") :]
		if not path.startswith("/"):
			raise ValidationError(
				field, value, "a unix socket needs an absolute path (three slashes: unix:///path)", fix
			)
		if posixpath.normpath(path) != path or path.endswith("/"):
			raise ValidationError(
				field,
				value,
				"the socket path must be a plain absolute path (no '..', '.', '//' or trailing '/')",
				f"use e.g. unix://{posixpath.normpath(path) or '/var/run/docker.sock'}",
			)
		if len(path.encode()) > UNIX_SOCKET_PATH_MAX:
			raise ValidationError(
				field,
				value,
				f"a unix socket path has at most {UNIX_SOCKET_PATH_MAX} bytes",
				"use a shorter path",
			)
		return DockerSocket(scheme="unix", path=path)

	if parts.path not in ("", "/"):
		raise ValidationError(field, value, f"a {scheme}:// Docker socket has no path after the host", fix)
	if parts.password is not None:
		raise ValidationError(
			field,
			value,
			"a password in the URL is not accepted",
			"remove it; ssh:// uses the SSH keys of the user running the workers, tcp:// uses TLS client certificates",
		)
	host = _host(parts.hostname, field, value, fix)
	port = _port(parts, field, value, fix)
	if scheme == "tcp":
		if parts.username is not None:
			raise ValidationError(field, value, "a tcp:// Docker socket has no user", fix)
		if port is None:
			raise ValidationError(
				field,
				value,
				"a tcp:// Docker socket needs an explicit port",
				"add it, e.g. tcp://10.0.0.5:2376 (TLS)",
			)
		return DockerSocket(scheme="tcp", host=host, port=port)
	user = parts.username
	if user is not None and not _SSH_USER.fullmatch(user):
		raise ValidationError(
			field,
			value,
			f"{user!r} is not a valid user name (letters, digits, '_', '.', '-'; up to 32 characters)",
			fix,
		)
	return DockerSocket(scheme="ssh", host=host, port=port, user=user or None)


# --- S3 ------------------------------------------------------------------------------------------


def validate_bucket_name(value: object, field: str = "default_bucket") -> str:
	"""An S3 bucket name following the S3 naming rules (which MinIO applies too)."""
	text = _text(value, field, "a bucket name", "press-backups")
	fix = "use 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, e.g. press-backups"
	if _has_upper(text):
		raise ValidationError(
			field,
			value,
			"a bucket name must be lowercase",
			_use(_valid(validate_bucket_name, text.lower(), field, text), fix),
		)
	if not 3 <= len(text) <= 63:
		raise ValidationError(
			field, value, f"a bucket name has 3 to 63 characters (this one has {len(text)})", fix
		)
	if not _BUCKET_CHARS.fullmatch(text):
		raise ValidationError(
			field, value, "only lowercase letters, digits, dots and hyphens are allowed (no underscores)", fix
		)
	if not (text[0].isalnum() and text[-1].isalnum()):
		raise ValidationError(field, value, "a bucket name starts and ends with a letter or digit", fix)
	if ".." in text or ".-" in text or "-." in text:
		raise ValidationError(field, value, "a dot may not be next to another dot or a hyphen", fix)
	try:
		ipaddress.IPv4Address(text)
	except ValueError:
		pass
	else:
		raise ValidationError(field, value, "a bucket name may not look like an IP address", fix)
	for prefix in BUCKET_FORBIDDEN_PREFIXES:
		if text.startswith(prefix):
			raise ValidationError(
				field,
				value,
				f"the prefix {prefix!r} is reserved",
				f"choose a name that does not start with {prefix!r}",
			)
	for suffix in BUCKET_FORBIDDEN_SUFFIXES:
		if text.endswith(suffix):
			raise ValidationError(
				field,
				value,
				f"the suffix {suffix!r} is reserved",
				f"choose a name that does not end with {suffix!r}",
			)
	return text


def validate_endpoint_url(value: object, field: str = "endpoint_url") -> str:
	"""``http(s)://host[:port]`` of an S3 API; returns it normalised (lowercase, no trailing slash)."""
	fix = "enter the S3 API address as http(s)://HOST[:PORT], e.g. https://minio.internal:9000"
	text = _text(value, field, "an endpoint URL", "https://minio.internal:9000")
	if any(c.isspace() for c in text):
		raise ValidationError(field, value, "a URL has no spaces", fix)
	parts = _split(text, field, value, fix)
	if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
		raise ValidationError(field, value, "the URL must start with http:// or https://", fix)
	if parts.username is not None or parts.password is not None:
		raise ValidationError(
			field,
			value,
			"keys do not belong in the URL",
			"remove them from the URL; fill Access Key and Secret Key",
		)
	if parts.path not in ("", "/") or parts.query or parts.fragment:
		raise ValidationError(
			field,
			value,
			"the URL must not have a path, query or fragment (the bucket is set separately)",
			fix,
		)
	host = _host(parts.hostname, field, value, fix)
	port = _port(parts, field, value, fix)
	netloc = _format_host(host) + (f":{port}" if port is not None else "")
	return f"{parts.scheme.lower()}://{netloc}"


def validate_region(value: object, field: str = "region") -> str:
	"""An S3 region name such as ``us-east-1``; MinIO's default region is ``us-east-1``."""
	text = _text(value, field, "a region", "us-east-1")
	if not _REGION.fullmatch(text):
		raise ValidationError(
			field,
			value,
			"a region is 1-63 letters, digits, hyphens or underscores, starting with a letter or digit",
			"use the region the S3 server is configured with; for MinIO the default is us-east-1",
		)
	return text


def validate_access_key(value: object, field: str = "access_key") -> str:
	"""An S3 access key: 3-128 printable characters without spaces (the value never appears in errors)."""
	text = _text(value, field, "an access key", "the access key of a MinIO user")
	if not 3 <= len(text) <= 128 or any(c.isspace() or not c.isprintable() for c in text):
		raise ValidationError(
			field,
			"(hidden)",
			"an access key is 3-128 printable characters without spaces",
			"copy the access key again from the MinIO user or service account",
			show_value=False,
		)
	return text


def validate_secret_key(value: object, field: str = "secret_key") -> str:
	"""An S3 secret key: 8-256 printable characters without spaces (the value never appears in errors)."""
	text = _text(value, field, "a secret key", "the secret key of a MinIO user")
	if not 8 <= len(text) <= 256 or any(c.isspace() or not c.isprintable() for c in text):
		raise ValidationError(
			field,
			"(hidden)",
			"a secret key is 8-256 printable characters without spaces",
			"copy the secret key again from the MinIO user or service account",
			show_value=False,
		)
	return text


def validate_addressing_style(value: object, field: str = "addressing_style") -> str:
	text = _text(value, field, "an addressing style", "path")
	if text not in ("path", "virtual"):
		raise ValidationError(
			field,
			value,
			"the addressing style is 'path' (http://host/bucket/key) or 'virtual' (http://bucket.host/key)",
			"use 'path' for MinIO unless it is set up for virtual-host buckets",
		)
	return text


def validate_connect_timeout(value: object, field: str = "connect_timeout") -> int:
	fix = "enter a whole number of seconds from 1 to 60, e.g. 5"
	if isinstance(value, bool):
		raise ValidationError(field, value, "a timeout is a number of seconds", fix)
	try:
		number = int(str(value).strip())
	except (TypeError, ValueError):
		raise ValidationError(field, value, "a timeout is a whole number of seconds", fix) from None
	if not 1 <= number <= 60:
		raise ValidationError(field, value, "the timeout must be between 1 and 60 seconds", fix)
	return number


def validate_object_prefix(value: object, field: str = "minio_prefix") -> str:
	"""A prefix for object keys, such as ``backups`` or ``press/backups``; surrounding slashes are
	removed, an empty prefix is allowed."""
	text = _text(value, field, "an object key prefix", "backups", required=False).strip("/")
	if not text:
		return ""
	fix = "use path segments of letters, digits, '.', '_' and '-' separated by '/', e.g. backups or press/backups"
	if len(text) > MAX_OBJECT_PREFIX_LENGTH:
		raise ValidationError(
			field, value, f"a prefix has at most {MAX_OBJECT_PREFIX_LENGTH} characters", fix
		)
	for segment in text.split("/"):
		if not segment or segment in (".", "..") or not _KEY_SEGMENT.fullmatch(segment):
			raise ValidationError(
				field, value, f"the segment {segment!r} is empty, '.', '..' or has other characters", fix
			)
	return text


def validate_ca_bundle(value: object, field: str = "ca_bundle") -> str:
	"""PEM text holding one or more CA certificates (and nothing else secret); empty is allowed."""
	text = _text(value, field, "a CA bundle", "-----BEGIN CERTIFICATE-----...", required=False)
	if not text:
		return ""
	if "PRIVATE KEY" in text:
		raise ValidationError(
			field,
			"(PEM text)",
			"the text contains a private key",
			"paste only the CA certificate (BEGIN CERTIFICATE blocks)",
			show_value=False,
		)
	if "-----BEGIN CERTIFICATE-----" not in text:
		raise ValidationError(
			field,
			"(PEM text)",
			"no PEM certificate found",
			"paste the CA certificate in PEM form, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----",
			show_value=False,
		)
	from cryptography import x509

	try:
		certificates = x509.load_pem_x509_certificates(text.encode())
	except ValueError:
		raise ValidationError(
			field,
			"(PEM text)",
			"the PEM certificate could not be read (truncated or altered)",
			"paste the whole CA certificate again",
			show_value=False,
		) from None
	if not certificates:
		raise ValidationError(
			field,
			"(PEM text)",
			"no certificate found",
			"paste the CA certificate in PEM form",
			show_value=False,
		)
	return text + "\n"


# --- registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryAddress:
	"""A registry's address: ``scheme`` is ``None`` when the operator gave none (HTTPS, as Docker)."""

	host: str
	port: int | None = None
	scheme: str | None = None

	@property
	def host_port(self) -> str:
		"""``host[:port]``: the registry part of an image reference (Press's ``docker_registry_url``)."""
		return _format_host(self.host) + (f":{self.port}" if self.port is not None else "")

	@property
	def url(self) -> str:
		"""The normalised form of what the operator typed."""
		return f"{self.scheme}://{self.host_port}" if self.scheme else self.host_port

	@property
	def is_loopback(self) -> bool:
		if self.host == "localhost":
			return True
		try:
			return ipaddress.ip_address(self.host).is_loopback
		except ValueError:
			return False

	def base_url(self, scheme: str | None = None) -> str:
		return f"{scheme or self.scheme or 'https'}://{self.host_port}"


def validate_registry_url(
	value: object, field: str = "url", *, allow_insecure_http: bool = False
) -> RegistryAddress:
	"""``host[:port]``, optionally with ``http://`` or ``https://``; a trailing ``/`` or ``/v2/`` is
	dropped. ``http://`` is accepted for a loopback host, or anywhere when ``allow_insecure_http``."""
	fix = "enter HOST[:PORT] or https://HOST[:PORT], e.g. registry.internal:5000"
	text = _text(value, field, "a registry URL", "registry.internal:5000")
	if any(c.isspace() for c in text):
		raise ValidationError(field, value, "a URL has no spaces", fix)
	scheme = None
	if "://" in text:
		scheme = text.split("://", 1)[0].lower()
		if scheme not in ("http", "https"):
			raise ValidationError(field, value, "the scheme must be http:// or https://", fix)
	parts = _split(text if scheme else f"//{text}", field, value, fix)
	if parts.username is not None or parts.password is not None:
		raise ValidationError(
			field, value, "credentials do not belong in the URL", "remove them; fill Username and Password"
		)
	path = parts.path.rstrip("/")
	if path not in ("", "/v2") or parts.query or parts.fragment:
		raise ValidationError(
			field,
			value,
			"a registry URL has no path: images are named HOST[:PORT]/NAMESPACE/IMAGE",
			"remove the path and put it in Namespace",
		)
	host = _host(parts.hostname, field, value, fix)
	port = _port(parts, field, value, fix)
	address = RegistryAddress(host=host, port=port, scheme=scheme)
	if port is None and "." not in host and ":" not in host and host != "localhost":
		raise ValidationError(
			field,
			value,
			f"Docker reads a single-label host like {host!r} without a port as a Docker Hub namespace",
			f"use a dotted name or add the port, e.g. {host}:5000",
		)
	if scheme == "http" and not (address.is_loopback or allow_insecure_http):
		raise ValidationError(
			field,
			value,
			"plain http:// is allowed only for a loopback registry or one marked insecure",
			"use https://, or tick 'Insecure (plain HTTP)' and list the registry in every Docker daemon's insecure-registries",
		)
	return address


def validate_registry_namespace(value: object, field: str = "namespace") -> str:
	"""Path components of a repository name (Docker distribution rules), separated by ``/``; may be
	empty. Surrounding slashes are removed."""
	text = _text(value, field, "a namespace", "press", required=False).strip("/")
	if not text:
		return ""
	fix = "use lowercase letters and digits, joined by '.', '_', '__' or hyphens, components separated by '/', e.g. press or acme/press"
	if _has_upper(text):
		raise ValidationError(
			field,
			value,
			"a repository namespace must be lowercase",
			_use(_valid(validate_registry_namespace, text.lower(), field, text), fix),
		)
	if len(text) > MAX_NAMESPACE_LENGTH:
		raise ValidationError(
			field,
			value,
			f"a namespace has at most {MAX_NAMESPACE_LENGTH} characters, to leave room for image names",
			fix,
		)
	for component in text.split("/"):
		if not _PATH_COMPONENT.fullmatch(component):
			raise ValidationError(
				field, value, f"the path component {component!r} breaks the Docker repository name rules", fix
			)
	return text


def validate_registry_credentials(username: object, password: object) -> tuple[str, str]:
	"""Both empty (anonymous registry) or both set; a user name cannot contain ':' or spaces."""
	user = _text(username, "username", "a user name", "press", required=False)
	secret = password if isinstance(password, str) else ("" if password is None else str(password))
	if user and not secret:
		raise ValidationError(
			"password",
			"(empty)",
			"a user name was given without a password",
			"fill Password, or clear Username for an anonymous registry",
			show_value=False,
		)
	if secret and not user:
		raise ValidationError(
			"username",
			username,
			"a password was given without a user name",
			"fill Username, or clear Password for an anonymous registry",
		)
	if user and (":" in user or any(c.isspace() or not c.isprintable() for c in user) or len(user) > 256):
		raise ValidationError(
			"username",
			username,
			"a user name has no ':' or spaces (HTTP basic authentication)",
			"use the registry account's user name",
		)
	return user, secret
