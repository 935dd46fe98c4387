"""Pure parts of the job model: what the store masks, and how a masked value is found again in the
request Press recorded (the Frappe layer reads Press's Agent Job for secrets it keeps nowhere else)."""

from press_selfhosted.engine.masking import MASK, lookup, scrub

REQUEST = {
	"name": "s1.example.test",
	"create_user": {"email": "a@example.test", "password": "pw-1"},
	"config": {"smtp_password": "pw-2", "mail.server": "smtp.example.test"},
	"certificate": {"privkey.pem": "KEY", "fullchain.pem": "CHAIN"},
}


def test_every_masked_value_can_be_found_by_its_dotted_path():
	masked = scrub(REQUEST)
	assert masked["create_user"]["password"] == MASK and masked["config"]["smtp_password"] == MASK
	assert masked["certificate"]["privkey.pem"] == MASK and masked["certificate"]["fullchain.pem"] == "CHAIN"
	assert lookup(REQUEST, "create_user.password") == "pw-1"
	assert lookup(REQUEST, "config.smtp_password") == "pw-2"
	assert lookup(REQUEST, "certificate.privkey.pem") == "KEY"
	assert lookup(REQUEST, "config.mail.server") == "smtp.example.test"


def test_absent_paths_are_none():
	assert lookup(REQUEST, "create_user.token") is None
	assert lookup(REQUEST, "name.password") is None
	assert lookup(None, "anything") is None


def test_queue_timeouts_are_sized_to_the_work():
	"""RQ's default 25 minutes would kill backups, restores, builds and migrations mid-command."""
	from press_selfhosted.engine.agent.timeouts import HOUR, job_timeout

	for job_type in (
		"Backup Site",
		"Restore Site",
		"Run Remote Builder",
		"Update Site Migrate",
		"Migrate Site",
	):
		assert job_timeout(job_type) >= 6 * HOUR, job_type
	assert job_timeout("Ping Job") == HOUR
	# Press's own timeout of a backup (Site.backup_timeout) wins when longer, with room for the upload
	assert job_timeout("Backup Site", {"agent_job_timeout": 10 * HOUR}) == 10 * HOUR + 1800
	assert job_timeout("Backup Site", {"agent_job_timeout": "soon"}) == 6 * HOUR


def test_scrub_masks_keys_urls_and_signatures_the_store_must_not_keep():
	url = (
		"https://s3.example.test/b/site/2026/db.sql.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
		"&X-Amz-Credential=AKIA1%2F20260101%2Fus-east-1&X-Amz-Signature=0123abcd&X-Amz-Expires=3600"
	)
	request = {
		"common_site_config": {
			"redis_cache": "redis://:r3dis-pw@redis:6379",
			"redis_queue": "redis://q:6379",
		},
		"bench_config": {"environment_variables": {"STRIPE_KEY": "sk-1", "API_key": "k-2", "PATH": "/bin"}},
		"config": {"encryption_key": "enc-1", "host_name": "https://s.example.test"},
		"database": url,
		"site_config": '{"encryption_key": "enc-2", "mute_emails": 1}',
		"storage": {"backup": {"database": {"key": "p/s/db.sql.gz", "sha256": "f" * 64}}},
	}
	masked = scrub(request)
	text = str(masked)
	for secret in ("r3dis-pw", "sk-1", "k-2", "enc-1", "enc-2", "0123abcd", "AKIA1"):
		assert secret not in text, secret
	assert masked["common_site_config"]["redis_cache"] == f"redis://:{MASK}@redis:6379"
	assert masked["common_site_config"]["redis_queue"] == "redis://q:6379"
	assert masked["bench_config"]["environment_variables"]["PATH"] == "/bin"
	assert (
		"X-Amz-Expires=3600" in masked["database"]
		and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in masked["database"]
	)
	assert masked["storage"]["backup"]["database"]["key"] == "p/s/db.sql.gz"  # an object key is no secret
	assert '"mute_emails": 1' in masked["site_config"]
	# what a handler reads back: each masked value, whole, by its path in Press's request
	assert lookup(request, "common_site_config.redis_cache") == "redis://:r3dis-pw@redis:6379"
	assert lookup(request, "bench_config.environment_variables.STRIPE_KEY") == "sk-1"
	assert lookup(request, "database") == url
