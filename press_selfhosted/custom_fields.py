"""Custom fields press_selfhosted adds to Press DocTypes.

``CUSTOM_FIELDS`` is plain data, readable without Frappe (``ast.literal_eval`` of the assignment):
install.py applies it with ``create_custom_fields(CUSTOM_FIELDS, update=True)`` after install and
after every migrate, and removes the fields before uninstall; tests/unit/test_custom_fields.py checks
every DocType and ``insert_after`` against Press's DocType JSON.

A Server, Proxy Server or Database Server with both ``container_prefix`` and ``docker_socket`` set is
a container server: press_selfhosted is its agent.
"""

CUSTOM_FIELDS = {
	"Server": [
		{
			"fieldname": "container_prefix",
			"label": "Container Prefix",
			"fieldtype": "Data",
			"insert_after": "agent_password",
			"length": 22,
			"description": "Set together with Docker Socket to make this a container server run by press_selfhosted. "
			"Every container, volume and network of this server starts with this prefix. Lowercase letters, digits "
			"and single hyphens, starting with a letter, ending with a letter or digit, at most 22 characters "
			"(e.g. erp-cloud-c16).",
		},
		{
			"fieldname": "docker_socket",
			"label": "Docker Socket",
			"fieldtype": "Data",
			"insert_after": "container_prefix",
			"description": "How press_selfhosted reaches this server's Docker Engine: unix:///var/run/docker.sock "
			"(same machine), tcp://HOST:PORT (Docker over TLS, e.g. tcp://10.0.0.5:2376) or ssh://[USER@]HOST[:PORT].",
		},
		{
			"fieldname": "docker_tls_ca",
			"label": "Docker TLS CA Certificate",
			"fieldtype": "Code",
			"insert_after": "docker_socket",
			"depends_on": "eval:(doc.docker_socket || '').startsWith('tcp://')",
			"description": "For a tcp:// Docker Socket: the PEM certificate of the CA that signed the Docker "
			"daemon's certificate (dockerd --tlscacert). Set together with the client certificate and key.",
		},
		{
			"fieldname": "docker_tls_cert",
			"label": "Docker TLS Client Certificate",
			"fieldtype": "Code",
			"insert_after": "docker_tls_ca",
			"depends_on": "eval:(doc.docker_socket || '').startsWith('tcp://')",
			"description": "For a tcp:// Docker Socket: the PEM client certificate press_selfhosted presents, "
			"signed by a CA the daemon trusts (dockerd --tlsverify --tlscacert).",
		},
		{
			"fieldname": "docker_tls_key",
			"label": "Docker TLS Client Key",
			"fieldtype": "Password",
			"insert_after": "docker_tls_cert",
			"depends_on": "eval:(doc.docker_socket || '').startsWith('tcp://')",
			"description": "For a tcp:// Docker Socket: the PEM private key of the client certificate. Stored "
			"encrypted; written to a 0600 file in the site's private folder when the server is reached.",
		},
	],
	"Proxy Server": [
		{
			"fieldname": "container_prefix",
			"label": "Container Prefix",
			"fieldtype": "Data",
			"insert_after": "agent_password",
			"length": 22,
			"description": "Set together with Docker Socket to make this a container proxy server (Traefik) run by "
			"press_selfhosted. Lowercase letters, digits and single hyphens, starting with a letter, ending with a "
			"letter or digit, at most 22 characters (e.g. erp-cloud-c16).",
		},
		{
			"fieldname": "docker_socket",
			"label": "Docker Socket",
			"fieldtype": "Data",
			"insert_after": "container_prefix",
			"description": "How press_selfhosted reaches this server's Docker Engine: unix:///var/run/docker.sock "
			"(same machine), tcp://HOST:PORT (Docker over TLS, e.g. tcp://10.0.0.5:2376) or ssh://[USER@]HOST[:PORT].",
		},
		{
			"fieldname": "docker_tls_ca",
			"label": "Docker TLS CA Certificate",
			"fieldtype": "Code",
			"insert_after": "docker_socket",
			"depends_on": "eval:(doc.docker_socket || '').startsWith('tcp://')",
			"description": "For a tcp:// Docker Socket: the PEM certificate of the CA that signed the Docker "
			"daemon's certificate (dockerd --tlscacert). Set together with the client certificate and key.",
		},
		{
			"fieldname": "docker_tls_cert",
			"label": "Docker TLS Client Certificate",
			"fieldtype": "Code",
			"insert_after": "docker_tls_ca",
			"depends_on": "eval:(doc.docker_socket || '').startsWith('tcp://')",
			"description": "For a tcp:// Docker Socket: the PEM client certificate press_selfhosted presents, "
			"signed by a CA the daemon trusts (dockerd --tlsverify --tlscacert).",
		},
		{
			"fieldname": "docker_tls_key",
			"label": "Docker TLS Client Key",
			"fieldtype": "Password",
			"insert_after": "docker_tls_cert",
			"depends_on": "eval:(doc.docker_socket || '').startsWith('tcp://')",
			"description": "For a tcp:// Docker Socket: the PEM private key of the client certificate. Stored "
			"encrypted; written to a 0600 file in the site's private folder when the server is reached.",
		},
	],
	"Database Server": [
		{
			"fieldname": "container_prefix",
			"label": "Container Prefix",
			"fieldtype": "Data",
			"insert_after": "agent_password",
			"length": 22,
			"description": "Set together with Docker Socket to make this a container database server (MariaDB) run by "
			"press_selfhosted. Lowercase letters, digits and single hyphens, starting with a letter, ending with a "
			"letter or digit, at most 22 characters (e.g. erp-cloud-c16).",
		},
		{
			"fieldname": "docker_socket",
			"label": "Docker Socket",
			"fieldtype": "Data",
			"insert_after": "container_prefix",
			"description": "How press_selfhosted reaches this server's Docker Engine: unix:///var/run/docker.sock "
			"(same machine), tcp://HOST:PORT (Docker over TLS, e.g. tcp://10.0.0.5:2376) or ssh://[USER@]HOST[:PORT].",
		},
		{
			"fieldname": "docker_tls_ca",
			"label": "Docker TLS CA Certificate",
			"fieldtype": "Code",
			"insert_after": "docker_socket",
			"depends_on": "eval:(doc.docker_socket || '').startsWith('tcp://')",
			"description": "For a tcp:// Docker Socket: the PEM certificate of the CA that signed the Docker "
			"daemon's certificate (dockerd --tlscacert). Set together with the client certificate and key.",
		},
		{
			"fieldname": "docker_tls_cert",
			"label": "Docker TLS Client Certificate",
			"fieldtype": "Code",
			"insert_after": "docker_tls_ca",
			"depends_on": "eval:(doc.docker_socket || '').startsWith('tcp://')",
			"description": "For a tcp:// Docker Socket: the PEM client certificate press_selfhosted presents, "
			"signed by a CA the daemon trusts (dockerd --tlsverify --tlscacert).",
		},
		{
			"fieldname": "docker_tls_key",
			"label": "Docker TLS Client Key",
			"fieldtype": "Password",
			"insert_after": "docker_tls_cert",
			"depends_on": "eval:(doc.docker_socket || '').startsWith('tcp://')",
			"description": "For a tcp:// Docker Socket: the PEM private key of the client certificate. Stored "
			"encrypted; written to a 0600 file in the site's private folder when the server is reached.",
		},
	],
	"Site Backup": [
		{
			"fieldname": "minio_bucket",
			"label": "MinIO Bucket",
			"fieldtype": "Data",
			"insert_after": "offsite_backup",
			"read_only": 1,
			"description": "Bucket of the Storage Configuration the backup files were uploaded to.",
		},
		{
			"fieldname": "minio_prefix",
			"label": "MinIO Prefix",
			"fieldtype": "Data",
			"insert_after": "minio_bucket",
			"read_only": 1,
			"description": "Object key prefix of this backup's files: <prefix>/<site>/<YYYY-MM-DD>.",
		},
		{
			"fieldname": "minio_checksums",
			"label": "MinIO Checksums",
			"fieldtype": "Code",
			"options": "JSON",
			"insert_after": "minio_prefix",
			"read_only": 1,
			"description": 'SHA-256 of every uploaded file, as JSON: {"<file name>": "<hex digest>"}; checked on '
			"upload and before a restore.",
		},
	],
	"Site": [
		{
			"fieldname": "last_verified_restore",
			"label": "Last Verified Restore",
			"fieldtype": "Datetime",
			"insert_after": "disable_streaming_backups",
			"read_only": 1,
			"no_copy": 1,
			"description": "When a restore drill last restored this site's latest backup into a throw-away "
			"site and found the same tables and row counts (press_selfhosted).",
		},
		{
			"fieldname": "last_restore_drill_result",
			"label": "Last Restore Drill Result",
			"fieldtype": "Small Text",
			"insert_after": "last_verified_restore",
			"read_only": 1,
			"no_copy": 1,
		},
	],
	# How a container proxy certifies the sites under the root domain (press_selfhosted/glue/root_domains.py)
	"Root Domain": [
		{
			"fieldname": "acme_section",
			"label": "Certificates on Container Proxies",
			"fieldtype": "Section Break",
			"insert_after": "aws_region",
			"collapsible": 1,
		},
		{
			"fieldname": "acme_challenge",
			"label": "ACME Challenge",
			"fieldtype": "Select",
			"options": "HTTP-01\nDNS-01",
			"default": "HTTP-01",
			"insert_after": "acme_section",
			"description": "HTTP-01: the proxy's Traefik obtains a certificate for each site name (port 80 must reach "
			"it). DNS-01: it obtains one wildcard *.<domain> by publishing a TXT record through the DNS provider "
			"below; needs DNS Provider (above) Generic and the ACME e-mail in the site config.",
		},
		{
			"fieldname": "acme_dns_provider",
			"label": "ACME DNS Provider",
			"fieldtype": "Data",
			"insert_after": "acme_challenge",
			"depends_on": "eval:doc.acme_challenge == 'DNS-01'",
			"mandatory_depends_on": "eval:doc.acme_challenge == 'DNS-01'",
			"description": "The provider's code in Traefik's ACME client (lego): cloudflare, route53, ovh, "
			"digitalocean, hetzner, rfc2136, ... See https://go-acme.github.io/lego/dns/ for the codes and the "
			"variables each needs.",
		},
		{
			"fieldname": "acme_dns_resolvers",
			"label": "ACME DNS Resolvers",
			"fieldtype": "Data",
			"insert_after": "acme_dns_provider",
			"depends_on": "eval:doc.acme_challenge == 'DNS-01'",
			"description": "Optional: DNS servers (host:port, separated by commas) asked whether the record has "
			"propagated, e.g. 1.1.1.1:53, 8.8.8.8:53.",
		},
		{
			"fieldname": "acme_dns_delay",
			"label": "ACME DNS Delay (seconds)",
			"fieldtype": "Int",
			"insert_after": "acme_dns_resolvers",
			"non_negative": 1,
			"depends_on": "eval:doc.acme_challenge == 'DNS-01'",
			"description": "Optional: seconds to wait before the propagation check (a DNS host that publishes slowly).",
		},
		{
			"fieldname": "acme_dns_skip_propagation_check",
			"label": "Skip ACME DNS Propagation Check",
			"fieldtype": "Check",
			"insert_after": "acme_dns_delay",
			"depends_on": "eval:doc.acme_challenge == 'DNS-01'",
			"description": "When the proxy cannot query DNS servers that see your zone (split-horizon DNS, outbound "
			"DNS blocked): the ACME server is asked to validate without checking first (after the delay above).",
		},
		{
			"fieldname": "acme_dns_credentials",
			"label": "ACME DNS Credentials",
			"fieldtype": "Table",
			"options": "ACME DNS Credential",
			"insert_after": "acme_dns_skip_propagation_check",
			"depends_on": "eval:doc.acme_challenge == 'DNS-01'",
			"description": "The provider's variables (e.g. CF_DNS_API_TOKEN) and their values, stored encrypted. "
			"Traefik reads them from files only it can read; they are never in its environment or arguments.",
		},
	],
	# Who issued a TLS Certificate, and which container proxy serves it when it was obtained by ACME
	# (press_selfhosted/glue/certificates.py, platform_certificates.py)
	"TLS Certificate": [
		{
			"fieldname": "certificate_issuer",
			"label": "Certificate Issuer",
			"fieldtype": "Data",
			"insert_after": "provider",
			"read_only": 1,
			"description": "The common name of the CA that signed the certificate (an ACME server's, or the "
			"platform CA's).",
		},
		{
			"fieldname": "acme_proxy_server",
			"label": "ACME Proxy Server",
			"fieldtype": "Link",
			"options": "Proxy Server",
			"insert_after": "certificate_issuer",
			"read_only": 1,
			"description": "The container proxy whose Traefik obtained this certificate by ACME and serves it; "
			"press_selfhosted keeps the record in step with it every hour.",
		},
	],
	"Site Plan": [
		{
			"fieldname": "max_users",
			"label": "Max Users",
			"fieldtype": "Int",
			"insert_after": "max_storage_usage",
			"non_negative": 1,
			"description": "Most enabled System Users a site on this plan may have (press_selfhosted); 0 means no limit.",
		},
	],
}
