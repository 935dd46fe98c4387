app_name = "press_selfhosted"
app_title = "Press Selfhosted"
app_publisher = "press_selfhosted developers"
app_description = "Run Frappe Press on machines you own: container servers over a Docker socket, a local registry, MinIO backups, Traefik routing"
app_email = "maintainers@press-selfhosted.invalid"
app_license = "AGPL-3.0"

# with its org, so that Frappe's installer never asks GitHub which org "press" belongs to
required_apps = ["frappe/press"]

# Install / migrate / uninstall: custom fields on Press DocTypes and indexes (press_selfhosted/install.py)
after_install = "press_selfhosted.install.after_install"
after_migrate = "press_selfhosted.install.after_migrate"
after_sync = "press_selfhosted.install.after_sync"
before_uninstall = "press_selfhosted.install.before_uninstall"

# Agent Job Types this app adds to Press's (Setup Container Server), synced on install and migrate
fixtures = [{"dt": "Agent Job Type", "filters": [["name", "in", ["Setup Container Server"]]]}]

# Press's server actions on container servers: setup_server sets up the containers, Ansible/SSH actions
# are refused (press_selfhosted/glue/servers.py); the forms show the container actions
override_doctype_class = {
	"Server": "press_selfhosted.glue.servers.ContainerAwareServer",
	"Proxy Server": "press_selfhosted.glue.servers.ContainerAwareProxyServer",
	"Database Server": "press_selfhosted.glue.servers.ContainerAwareDatabaseServer",
	# custom domains of container sites checked against the operator's DNS (press_selfhosted/glue/domains.py)
	"Site": "press_selfhosted.glue.domains.ContainerAwareSite",
	# certificates a container proxy obtains by ACME are asked for again there (agent/certificates.py)
	"TLS Certificate": "press_selfhosted.glue.certificates.ContainerAwareTLSCertificate",
}
# the dashboard's Add Domain dialog asks this first: the operator's resolvers answer for container sites
override_whitelisted_methods = {"press.api.site.check_dns": "press_selfhosted.glue.domains.check_dns"}
doctype_js = {
	"Server": "public/js/container_server.js",
	"Proxy Server": "public/js/container_server.js",
	"Database Server": "public/js/container_server.js",
	# backups verified and drilled, usage against the plan, on container servers' sites
	"Site": "public/js/container_site.js",
	"Site Backup": "public/js/container_site.js",
}

# Rules for records on container servers; records on agent servers keep Press's rules
doc_events = {
	"Server": {"validate": "press_selfhosted.record_rules.doc_events.validate_server_record"},
	"Proxy Server": {"validate": "press_selfhosted.record_rules.doc_events.validate_server_record"},
	"Database Server": {"validate": "press_selfhosted.record_rules.doc_events.validate_server_record"},
	"Site": {
		"validate": "press_selfhosted.record_rules.doc_events.validate_site",
		# plan limits are re-applied when a site's plan changes
		"on_update": "press_selfhosted.glue.usage.on_site_update",
	},
	# a custom domain of a container site points at its proxy before any route or certificate is made
	"Site Domain": {
		"before_insert": "press_selfhosted.glue.domains.validate_site_domain",
		# a platform-CA certificate is sent at once (Press waits for its certbot otherwise)
		"on_update": "press_selfhosted.glue.platform_certificates.send_custom_domain_certificate",
	},
	# custom domains of container sites whose root domain the platform CA certifies: issued by the CA
	"TLS Certificate": {"before_insert": "press_selfhosted.glue.platform_certificates.certify_custom_domain"},
	"Site Backup": {
		"validate": "press_selfhosted.record_rules.doc_events.validate_site_backup",
		# MinIO bucket, prefix and checksums from the finished Backup Site job
		"on_update": "press_selfhosted.glue.backups.complete_site_backup",
	},
	# Press Settings' registry fields and Cluster repository follow the default Local Registry
	"Local Registry": {"on_update": "press_selfhosted.glue.registry.on_local_registry_update"},
	# Press's Backup Bucket and offsite keys follow the default Storage Configuration (MinIO)
	"Storage Configuration": {"on_update": "press_selfhosted.glue.backups.sync_backup_bucket"},
	"Cluster": {"after_insert": "press_selfhosted.glue.backups.sync_default_backup_bucket"},
	# ACME DNS-01 settings a container proxy could not use are refused on save
	"Root Domain": {"validate": "press_selfhosted.glue.root_domains.validate_root_domain"},
}

# The in-process agent for container servers (press_selfhosted/agent): the transport swap before every
# request and background job, and the sweep that resumes jobs whose worker died
before_request = ["press_selfhosted.glue.runtime.apply_swap"]
before_job = ["press_selfhosted.glue.runtime.apply_swap"]
scheduler_events = {
	"cron": {"* * * * *": ["press_selfhosted.glue.runtime.sweep_jobs"]},
	# site usage (database, files, system users) against the plan's limits
	"hourly_long": [
		"press_selfhosted.glue.usage.measure_site_usages",
		# certificates Traefik obtains by ACME: missing ones and overdue renewals go to the Error Log
		"press_selfhosted.glue.certificates.report_site_certificates",
		# and kept as TLS Certificate records (made, updated, Expired, removed with what Traefik serves)
		"press_selfhosted.glue.certificates.watch_site_certificates",
	],
	# backups in MinIO: retention (Press's FIFO / grandfather-father-son), checksum re-checks, restore drills
	"daily_long": [
		"press_selfhosted.glue.backups.apply_retention",
		"press_selfhosted.glue.backups.recheck_backups",
		# build contexts kept after failed builds
		"press_selfhosted.glue.registry.prune_build_contexts",
		# the platform CA's certificates that lapse within 30 days
		"press_selfhosted.glue.platform_certificates.renew_platform_certificates",
	],
	"weekly_long": ["press_selfhosted.glue.backups.run_restore_drills"],
}
