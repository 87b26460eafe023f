"""Each setting is declared once (its variable, default, parser and purpose): reading, writing for
worker processes and describing all come from that one declaration."""

from dataclasses import fields
from pathlib import Path

import pytest

from genlab.core import InvalidRequestError
from genlab.core.settings import Settings

ENV = {
    "GENLAB_HOME": "/tmp/genlab-settings-test",
    "GENLAB_QUEUE_LIMIT": "3",
    "GENLAB_CODE_ROLES": "admin",
    "GENLAB_WEBHOOK_ALLOW": "10.0.0.0/8, hooks.local",
    "GENLAB_SELF_REVIEW": "yes",
    "GENLAB_THREADS": "2",
    "GENLAB_AUDIT_KEY": "ab" * 16,
    "GENLAB_PROMPT_CACHE_MB": "0",  # zero is allowed: no conversation states saved
}


def test_every_setting_reads_its_variable_and_round_trips_to_workers():
    s = Settings.from_env(ENV)
    assert s.home == Path(ENV["GENLAB_HOME"]).resolve() and s.queue_limit == 3 and s.threads == 2
    assert s.prompt_cache_mb == 0 and Settings(home=Path("/tmp")).prompt_cache_mb == 256
    assert s.code_roles == ("admin",) and s.webhook_allow == ("10.0.0.0/8", "hooks.local") and s.self_review
    assert Settings.from_env(s.to_env()) == s  # a worker process sees the same settings
    described = {d["field"]: d for d in Settings.describe()}
    assert set(described) == {f.name for f in fields(Settings)} and all(d["help"] for d in described.values())
    assert len({d["variable"] for d in described.values()}) == len(described)


def test_unset_and_empty_variables_take_their_defaults_and_bad_ones_say_what_is_wrong():
    s = Settings.from_env({"GENLAB_HOME": "/tmp/x", "GENLAB_QUEUE_LIMIT": "", "GENLAB_POLICY": ""})
    assert s.queue_limit == 8 and s.policy == "default" and s.code_roles == ("reviewer", "admin")
    assert Settings.from_env({"GENLAB_HOME": "/tmp/x", "GENLAB_CODE_ROLES": ""}).code_roles == ()
    with pytest.raises(InvalidRequestError, match="GENLAB_QUEUE_LIMIT must be an integer"):
        Settings.from_env({"GENLAB_QUEUE_LIMIT": "many"})
    with pytest.raises(InvalidRequestError, match="unknown role"):
        Settings.from_env({"GENLAB_CODE_ROLES": "root"})
