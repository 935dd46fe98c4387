"""Secrets out of what is stored: payloads and texts with every secret-looking value masked.

Press puts root DB passwords, admin passwords, registry passwords and S3 keys in its payloads; the job
store keeps none of them (handlers read secrets from their SecretSource when they run)."""

from __future__ import annotations

import json
import re
from typing import Any

MASK = "********"
# Press puts root DB passwords, admin passwords, registry passwords and S3 keys in payloads;
# none of them is kept: handlers read secrets from Password fields when they run. A key named like a
# secret (``*_KEY`` environment variables, ``encryption_key``) has its value masked; so has, in any
# text, the password of a URL (``redis://:pw@host``) and the signature parts of a presigned URL.
_SECRET_KEY = re.compile(
	r"pass|secret|token|access_key|private|privkey|credential|encryption|_key$|signature",
	re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)", re.IGNORECASE)
_SIGNED_QUERY = re.compile(
	r"(?P<head>[?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId"
	r"|x-goog-signature|sig)=)[^&#\s\"]+",
	re.IGNORECASE,
)


# a URL's credentials (``https://x-access-token:<token>@github.com/...``, Press's private app sources)
_URL_CREDENTIALS = re.compile(
	r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:)(?P<secret>[^/@\s]+)(?P<tail>@.*)$", re.DOTALL
)


def lookup(payload: Any, path: str) -> Any:
	"""The value at a dotted ``path`` (``create_user.password``, ``config.smtp_password``,
	``clone_instructions.0.url``) of a payload, None when absent. Keys may hold dots themselves, so the
	longest matching key wins; a number indexes a list."""
	if isinstance(payload, list):
		head, _, rest = path.partition(".")
		if not head.isdigit() or int(head) >= len(payload):
			return None
		return lookup(payload[int(head)], rest) if rest else payload[int(head)]
	if not isinstance(payload, dict):
		return None
	if path in payload:
		return payload[path]
	for cut in range(len(path) - 1, 0, -1):
		if path[cut] == "." and path[:cut] in payload:
			return lookup(payload[path[:cut]], path[cut + 1 :])
	return None


def scrub(value: Any) -> Any:
	"""A copy of ``value`` with the value of every secret-looking key replaced by a mask, at any depth;
	in text, URL passwords and presigned signatures are masked, and a JSON object held as text (a
	site_config Press sends as a string) is scrubbed inside. A handler that needs a masked value
	reads it from its SecretSource under the value's dotted path."""
	if isinstance(value, str):
		return _scrub_text(value)
	if isinstance(value, dict):
		# a secret is a scalar: a secret-looking key holding a dict or list (the glue's
		# ``storage.backup.private`` = {key, sha256}) is scrubbed inside, not thrown away
		return {
			key: (
				MASK
				if _SECRET_KEY.search(str(key))
				and item not in (None, "")
				and not isinstance(item, dict | list)
				else scrub(item)
			)
			for key, item in value.items()
		}
	if isinstance(value, list):
		return [scrub(item) for item in value]
	return value


def _scrub_text(text: str) -> str:
	if text.lstrip().startswith("{"):
		try:
			found = json.loads(text)
		except ValueError:
			found = None
		if isinstance(found, dict):
			cleaned = scrub(found)
			return text if cleaned == found else json.dumps(cleaned)
	if credentials := _URL_CREDENTIALS.match(text):
		text = credentials["head"] + MASK + credentials["tail"]
	text = _URL_PASSWORD.sub(lambda match: match.group("head") + MASK, text)
	return _SIGNED_QUERY.sub(lambda match: match.group("head") + MASK, text)


def masked(value: Any) -> bool:
	"""Does ``value`` (as the store kept it) hold a masked secret?"""
	return isinstance(value, str) and MASK in value
