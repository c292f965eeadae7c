"""``kling-async sandbox`` as a user meets it: a real process that prints where it listens and
which credentials to use, applies its options, and stops cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .test_cli_process import ACCESS_KEY, API_KEY, SECRET_KEY, _campaign, _cli, _env, _free_port
from .test_cli_process import _start as _start_cli

READY = "Ctrl-C or SIGTERM stops it."


def _start(*args: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    """A sandbox process on a free port, and what it printed up to the ready line."""
    port = _free_port()
    proc = _start_cli("sandbox", "--port", str(port), *args)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while READY not in lines:
        line = proc.stdout.readline()
        assert line and time.monotonic() < deadline, (lines, proc.communicate()[1])
        lines.append(line.rstrip("\n"))
    return proc, port, lines


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


@pytest.mark.parametrize(
    ("signum", "name"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")]
)
def test_prints_urls_and_credentials_and_stops_cleanly(
    tmp_path: Path, signum: int, name: str
) -> None:
    """The sandbox prints both base URLs and ready-to-run commands with its credentials; the
    API-key and the AccessKey/SecretKey commands, run as printed, finish a campaign; a signal
    stops it with exit 0 and no traceback."""
    proc, port, lines = _start(
        "--api-key", API_KEY, "--api-key", "second-key", "--access-key", ACCESS_KEY,
        "--secret-key", SECRET_KEY, "--image-duration", "0.2,0.5",
    )  # fmt: skip
    text = "\n".join(lines)
    kling, modellix = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api/v1"
    assert f"Kling API     {kling}" in text and f"Modellix API  {modellix}" in text
    assert API_KEY in text and "second-key" in text
    commands = [line.strip() for line in lines if "kling-async run" in line]
    assert len(commands) == 3, text  # API key, AccessKey/SecretKey, Modellix
    campaign = _campaign(tmp_path, lines=2)
    for i, command in enumerate(commands[:2]):
        words = shlex.split(command)
        program = words.index("kling-async")
        env = _env(**dict(word.split("=", 1) for word in words[:program]))
        places = {"CAMPAIGN.jsonl": str(campaign), "DIR": str(tmp_path / f"out{i}")}
        args = [places.get(word, word) for word in words[program + 1 :]]
        done = _cli(*args, env=env)
        assert done.returncode == 0, (command, done.stderr)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"sandbox stopped ({name})" in out and "Traceback" not in err + out


def test_options_reach_the_sandbox() -> None:
    """--quota sets the pools' capacity and --fault injects the named fault."""
    proc, port, _ = _start("--quota", "image=2,video=1,team=2", "--fault", "error_before_create=1")
    try:
        url = f"http://127.0.0.1:{port}"
        request = urllib.request.Request(
            url + "/v1/images/omni-image",
            data=json.dumps({"prompt": "a mug"}).encode(),
            headers={"Authorization": "Bearer sandbox-key", "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert json.load(refused.value)["code"] == 5000
        stats = _get(url + "/sandbox/stats")
        assert stats["faults_injected"] == {"error_before_create": 1}
        capacities = {key: pool["capacity"] for key, pool in stats["pools"].items()}
        assert capacities["modellix:team"] == 2
        assert {c for k, c in capacities.items() if k.endswith(":image")} == {2}
        assert {c for k, c in capacities.items() if k.endswith(":video")} == {1}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def test_a_taken_port_is_one_line() -> None:
    """A port already in use is one line naming it, exit 2."""
    proc, port, _ = _start()
    try:
        second = _cli("sandbox", "--port", str(port))
        assert second.returncode == 2
        assert second.stderr == (
            f"kling-async: --port {port}: cannot listen on 127.0.0.1:{port} "
            "(address already in use)\n"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fault", "bogus=1"), "--fault 'bogus=1': unknown fault 'bogus'; one of"),
        (("--fault", "slow=2"), "--fault slow: 2.0 is outside [0, 1]"),
        (("--fault", "slow=lots"), "--fault 'slow=lots': give NAME=RATE"),
        (("--quota", "image=0"), "--quota 'image=0': "),
        (("--image-duration", "5,1"), "--image-duration '5,1': need 0 <= LOW <= HIGH"),
        (("--access-key", "ak"), "--access-key and --secret-key go together"),
        (("--fail-rate", "3"), "sandbox: fail_rate"),
    ],
)
def test_bad_options_are_one_line(args: tuple[str, ...], message: str) -> None:
    """A malformed or out-of-range option is one line naming the flag, exit 2."""
    proc = _cli("sandbox", "--port", str(_free_port()), *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"kling-async: {message}"), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_testing_serve_prints_every_key_and_stops_on_sigterm() -> None:
    """``kling_async.testing.serve()`` prints every API key and AccessKey it accepts, and
    SIGTERM stops it cleanly (exit 0), like Ctrl-C."""
    code = (
        "from kling_async.testing import serve; "
        "serve(0, api_keys=('key-one', 'key-two'), access_keys={'ak-1': 'sk-1'})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while READY not in lines:
        line = proc.stdout.readline()
        assert line and time.monotonic() < deadline, (lines, proc.communicate()[1])
        lines.append(line.rstrip("\n"))
    text = "\n".join(lines)
    assert "key-one" in text and "key-two" in text and "ak-1" in text and "sk-1" in text
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "sandbox stopped (SIGTERM)" in out and "Traceback" not in err


def test_a_key_with_a_control_character_is_printed_escaped() -> None:
    """A --api-key holding an ANSI escape is printed escaped in the ready-to-run commands."""
    proc, _, lines = _start("--api-key", "key\x1b[2Jx")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    printed = "\n".join(line for line in lines if "kling-async run" in line)
    assert "\x1b" not in printed
    assert "KLING_API_KEY='key\\x1b[2Jx'" in printed


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (what the README's openssl command
    makes) and its key, as PEM files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "sandbox-cert.pem", folder / "sandbox-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_the_printed_https_command_runs_as_printed(tmp_path: Path) -> None:
    """Served over TLS with a self-signed certificate, the sandbox's printed run command
    (which names the certificate in SSL_CERT_FILE) finishes a campaign as printed."""
    cert, key = _self_signed(tmp_path)
    proc, port, lines = _start(
        "--api-key", API_KEY, "--tls-cert", str(cert), "--tls-key", str(key),
        "--image-duration", "0.2,0.5",
    )  # fmt: skip
    try:
        text = "\n".join(lines)
        assert f"Kling API     https://127.0.0.1:{port}" in text
        assert "NODE_EXTRA_CA_CERTS" in text
        command = next(line.strip() for line in lines if "KLING_API_KEY=" in line)
        words = shlex.split(command)
        program = words.index("kling-async")
        env = _env(**dict(word.split("=", 1) for word in words[:program]))
        places = {"CAMPAIGN.jsonl": str(_campaign(tmp_path, lines=2)), "DIR": str(tmp_path / "out")}
        done = _cli(*[places.get(word, word) for word in words[program + 1 :]], env=env)
        assert done.returncode == 0, (command, done.stderr)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
