"""The /proc sampler of the hygiene test can fail: a password on a command line is caught."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.security.conftest import ArgvSampler


def test_the_argv_sampler_catches_a_password_on_a_command_line():
    secret = "S3cr3t-ON-ARGV-1234"
    with ArgvSampler({"demo": secret}) as sampler:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)", "--password", secret])
        time.sleep(0.3)
        proc.kill()
        proc.wait()
    assert sampler.hits and sampler.hits[0][0] == "demo" and secret in sampler.hits[0][2]
