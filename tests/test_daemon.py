"""`lsp-llm serve --tcp` as a shared daemon: editors connected at once each get their own
session over one loaded model; an editor that exits or vanishes ends only its session; the
model stays loaded for the next editor. And the pool that makes the sharing."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from lsprotocol import types

from lsp_llm.client import ServerSession
from lsp_llm.config import Settings
from tests.lsp_helpers import SERVER, server_env, tcp_daemon

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _settings(tiny) -> dict:
    # The endless model: the generation the test drops is still running, on any machine.
    return {"model": str(tiny.endless), "chat": {"maxNewTokens": 8, "temperature": 0}}


async def _ask(session: ServerSession) -> tuple[str, str]:
    deltas: list[str] = []
    result = await asyncio.wait_for(
        session.chat([{"role": "user", "content": "What is a list?"}], deltas.append), 60
    )
    return result.content, "".join(deltas)


async def test_daemon_serves_editors_at_once_and_one_after_another(tiny):
    with tcp_daemon("--model-dir", str(tiny.target.parent)) as (port, proc):
        first, second = (
            ServerSession(_settings(tiny), connect=("127.0.0.1", port)) for _ in range(2)
        )
        await asyncio.gather(first.start(), second.start())
        (a, a_streamed), (b, b_streamed) = await asyncio.gather(_ask(first), _ask(second))
        assert a and a == a_streamed and b == b_streamed
        assert a == b  # the same greedy answer from the one shared model

        # The second editor quits (shutdown + exit): the first one goes on.
        await second.close()
        assert (await _ask(first))[0] == a
        # The first one vanishes mid-generation, without shutdown.
        first.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"lspLlm": {"chat": {"maxNewTokens": 32768}}}
            )
        )
        pending = asyncio.ensure_future(_ask(first))
        await asyncio.sleep(0.5)
        assert not pending.done()
        first.client.protocol.writer.close()  # the connection drops
        await first.client.stop()
        pending.cancel()
        await asyncio.sleep(0.2)
        assert proc.poll() is None  # the daemon is still there

        # A third editor finds the model still loaded and is answered the same.
        third = ServerSession(_settings(tiny), connect=("127.0.0.1", port))
        await third.start()
        try:
            assert third.status.get("state") == "ready"
            assert (await _ask(third))[0] == a
        finally:
            await third.close()
        # The one-shot command line, pointed at the daemon.
        chat = subprocess.run(
            [
                *SERVER[:-1],
                "chat",
                "What is a list?",
                "--connect",
                str(port),
                "--settings",
                json.dumps(_settings(tiny)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=server_env(),
        )
        assert chat.returncode == 0, chat.stderr[-2000:]
        assert chat.stdout.strip() == a.strip() and "[chat]" in chat.stderr
        assert proc.poll() is None


async def test_pool_shares_one_engine_per_model_and_keeps_one_idle(tiny):
    from lsp_llm.engine.local import LocalBackend
    from lsp_llm.server.pool import EnginePool

    loads: list[str | None] = []

    def counting_load(settings, progress):
        loads.append(settings.model)
        return LocalBackend.load(settings, progress)

    pool = EnginePool(keep_idle=1, loader=counting_load)
    target, draft = Settings(model=str(tiny.target)), Settings(model=str(tiny.draft))
    try:
        one, two = await asyncio.gather(
            pool.acquire(target, lambda *_: None), pool.acquire(target, lambda *_: None)
        )
        assert one is two and loads == [str(tiny.target)]
        pool.release(one)
        assert pool.loaded() == [one] and one.engine.worker.alive  # still used by the other
        pool.release(two)
        assert pool.loaded() == [one] and one.engine.worker.alive  # idle, kept warm
        again = await pool.acquire(target, lambda *_: None)
        assert again is one and len(loads) == 1
        pool.release(again)
        # Another model: the idle one is closed before it loads.
        other = await pool.acquire(draft, lambda *_: None)
        assert other is not one and not one.engine.worker.alive
        assert pool.loaded() == [other] and loads == [str(tiny.target), str(tiny.draft)]
        pool.release(other)
        # A model that fails to load: the error reaches the caller, the next call retries.
        missing = Settings(model=str(tiny.target) + "-missing")
        for _ in range(2):
            with pytest.raises(Exception, match="missing"):
                await pool.acquire(missing, lambda *_: None)
        assert loads.count(missing.model) == 2
    finally:
        pool.close()
    assert pool.loaded() == []


async def test_a_client_loads_only_what_the_daemon_allows(tiny, tmp_path, capsys):
    """`--model-dir`: a client may choose a model inside it, not one elsewhere (refused with
    words that do not say whether it exists), and never with `trustRemoteCode`: a model
    folder whose config asks to import its own module does not get it run."""
    import shutil

    allowed = tmp_path / "models"
    inside = allowed / "tiny"
    shutil.copytree(tiny.target, inside)
    payload = allowed / "custom"
    payload.mkdir()
    marker = tmp_path / "payload-ran"
    auto_map = {"AutoConfig": "marker.Config", "AutoModelForCausalLM": "marker.Model"}
    (payload / "config.json").write_text(json.dumps({"model_type": "x", "auto_map": auto_map}))
    (payload / "marker.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with tcp_daemon("--model", "bundled", "--model-dir", str(allowed)) as (port, _):
        for wanted, expect in (
            (str(tiny.draft), "bundled"),  # outside the folder: the daemon's model stays
            ("/no/such/model", "bundled"),  # the same words: nothing learnt about the disk
            ("org/some-model", "bundled"),  # a hub id: no download a client can ask for
            (str(inside), str(inside)),
        ):
            session = ServerSession({"model": wanted}, connect=("127.0.0.1", port))
            await session.start()
            try:
                assert session.status["model"] == expect
            finally:
                await session.close()
        shown = capsys.readouterr().err
        assert shown.count("model: a client of this --tcp daemon can choose") == 3
        session = ServerSession(
            {"model": str(payload), "trustRemoteCode": True}, connect=("127.0.0.1", port)
        )
        with pytest.raises(RuntimeError):  # refused trust: the model cannot load
            await session.start()
        await session.close()
        assert "trustRemoteCode: a client of a --tcp daemon cannot set" in capsys.readouterr().err
        session = ServerSession({"threads": 64}, connect=("127.0.0.1", port))  # process-wide
        await session.start()
        await session.close()
        assert "threads: a client of a --tcp daemon cannot set" in capsys.readouterr().err
        session = ServerSession({"compile": True}, connect=("127.0.0.1", port))  # runs g++
        await session.start()
        await session.close()
        assert "compile: a client of a --tcp daemon cannot set" in capsys.readouterr().err
    assert not marker.exists()


async def test_a_model_loads_in_a_thread_that_ends_with_the_load():
    """The loading thread's OpenMP team would otherwise outlive it and make libgomp's
    workers sleep between the pieces of every pass on the inference thread."""
    import threading

    from lsp_llm.server.pool import EnginePool

    threads: list[threading.Thread] = []

    class Loaded:
        def close(self) -> None:
            pass

    def load(settings, progress):
        threads.append(threading.current_thread())
        if settings.model == "broken":
            raise RuntimeError("cannot load broken")
        return Loaded()

    pool = EnginePool(loader=load)
    try:
        backend = await pool.acquire(Settings(model="m"), lambda *_: None)
        assert isinstance(backend, Loaded)
        with pytest.raises(RuntimeError, match="cannot load broken"):
            await pool.acquire(Settings(model="broken"), lambda *_: None)
        for thread in threads:
            assert thread is not threading.main_thread()
            thread.join(timeout=10)
            assert not thread.is_alive()
        pool.release(backend)
    finally:
        pool.close()
