"""Secrets stay out of sight (issue 25, finding 8): key files and the nats-server conf are 0600 from the first byte,
`emoomni config show` masks tokens and passwords, a log line's bus URL has no password, and the client's token comes
from a file or the environment, not from the command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from emoomni.core.certs import make_certs
from emoomni.core.natsserver import NatsServer
from emoomni.core.private_files import redacted_url
from emoomni.sdk.commands import add_client_security, apply_client_security


def test_keys_and_the_bus_conf_are_created_owner_only(tmp_path):
    old = os.umask(0o022)  # a usual umask: plain files would come out 0644
    try:
        certs = make_certs(tmp_path / "certs")
        (tmp_path / "js").mkdir()
        with NatsServer(store_dir=str(tmp_path / "js"), user="u", password="bus-secret"):
            conf = tmp_path / "js" / "nats-server.conf"
            assert "bus-secret" in conf.read_text() and conf.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
    keys = list(certs.glob("*.key"))
    assert keys and all(key.stat().st_mode & 0o777 == 0o600 for key in keys), keys


def test_config_show_masks_secrets(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMOOMNI_", "NATS_"))}
    env.update(EMOOMNI_TOKEN="tok-4242-secret", EMOOMNI_NATS_PASSWORD="pw-4242-secret")
    shown = subprocess.run([sys.executable, "-m", "emoomni", "config", "show"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "4242" not in shown.stdout and "token: '***'" in shown.stdout and "password: '***'" in shown.stdout
    assert redacted_url("nats://emoomni:pw@10.0.0.2:4222") == "nats://emoomni:***@10.0.0.2:4222"


def test_the_client_token_comes_from_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv("EMOOMNI_TOKEN", raising=False)
    (tmp_path / "token").write_text("file-token-1\n")
    parser = argparse.ArgumentParser()
    add_client_security(parser)
    assert "--token" not in parser.format_help().replace("--token-file", "")
    apply_client_security(parser.parse_args(["--token-file", str(tmp_path / "token")]))
    assert os.environ["EMOOMNI_TOKEN"] == "file-token-1"

