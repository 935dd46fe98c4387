"""Pure parts of the job model: what the store masks, and how a masked value is found again in the
request Press recorded (the Frappe layer reads Press's Agent Job for secrets it keeps nowhere else)."""

from press_selfhosted.engine.agent.jobs import MASK, lookup, scrub

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
