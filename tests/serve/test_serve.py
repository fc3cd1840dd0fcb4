"""`tunewise serve`: the measured arm behind an OpenAI-compatible API, driven by real clients over loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest
from conftest import KEY, free_port

from tunewise.serve import Keys, Limits

pytestmark = pytest.mark.slow


def inputs_and_outputs(run_dir, arm: str) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return [(r["input"], r["output"]) for r in rows if r["arm"] == arm]


def run_dir(measured):
    return measured[1] / measured[0]


@pytest.mark.parametrize(("arm", "cache"), [("zero_shot", False), ("rag", False), ("self_consistency", True)])
def test_replaying_the_test_inputs_gives_the_measured_answers(measured, serving, server, arm, cache):
    """Temperature-0 arms with every call sent again; the sampled vote from the run's cached samples."""
    expected = inputs_and_outputs(run_dir(measured), arm)
    sent = len(server.log.entries)
    with serving(arm, read_cache=cache) as s:
        client = openai.OpenAI(base_url=s.base_url, api_key=KEY, max_retries=0)
        got = [client.chat.completions.create(model=s.model_id, messages=[{"role": "user", "content": q}])
               .choices[0].message.content for q, _ in expected]
    assert got == [a for _, a in expected]
    assert (len(server.log.entries) > sent) == (not cache)  # fresh calls really went to the model


def test_the_openai_sdk_sync_async_and_streaming(serving):
    with serving("zero_shot") as s:
        client = openai.OpenAI(base_url=s.base_url, api_key=KEY, max_retries=0)
        assert [m.id for m in client.models.list()] == [s.model_id]
        reply = client.chat.completions.create(
            model=s.model_id, messages=[{"role": "system", "content": "ignored"},
                                        {"role": "user", "content": "What is the capital of Alania?"}], n=2,
            temperature=0, max_tokens=20)
        assert reply.id.startswith("chatcmpl-") and len(reply.choices) == 2
        assert reply.choices[0].message.content == reply.choices[1].message.content == "The capital of Alania is AnAlville."
        assert reply.usage.prompt_tokens > 0 and reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens

        async def asynchronous() -> str:
            async with openai.AsyncOpenAI(base_url=s.base_url, api_key=KEY, max_retries=0) as a:
                r = await a.chat.completions.create(model=s.model_id, messages=[{"role": "user", "content": "What is the capital of Alania?"}])
                return r.choices[0].message.content

        import asyncio

        assert asyncio.run(asynchronous()) == "The capital of Alania is AnAlville."
        stream = client.chat.completions.create(model=s.model_id, stream=True, stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": "What is the capital of Alania?"}])
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "The capital of Alania is AnAlville."
        assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


def test_langchain_chat_openai_and_dspy_lm(serving):
    from langchain_openai import ChatOpenAI

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm reads its price list from disk
    import dspy

    question = "What is the capital of Zorabia?"  # only the documents know
    with serving("rag") as s:
        chat = ChatOpenAI(model=s.model_id, base_url=s.base_url, api_key=KEY, max_retries=0, temperature=0)
        assert chat.invoke(question).content == "Quellabton"
        assert "".join(part.content for part in chat.stream(question)) == "Quellabton"
        lm = dspy.LM(f"openai/{s.model_id}", api_base=s.base_url, api_key=KEY, cache=False, temperature=0.0,
                     max_tokens=16, num_retries=0)
        assert lm(question) == ["Quellabton"]


def test_a_vote_refuses_what_it_decides_itself_and_answers_the_rest(serving):
    with serving("self_consistency") as s:
        client = openai.OpenAI(base_url=s.base_url, api_key=KEY, max_retries=0)
        for extra, param in (({"n": 2}, "n"), ({"temperature": 0.2}, "temperature")):
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model=s.model_id, messages=[{"role": "user", "content": "x?"}], **extra)
            assert refused.value.body["param"] == param and f"'{param}' is not supported by arm 'self_consistency'" in \
                refused.value.body["message"]
        reply = client.chat.completions.create(model=s.model_id, max_tokens=16,
                                               messages=[{"role": "user", "content": "What is the capital of Alania?"}])
        assert reply.choices[0].message.content and reply.usage.completion_tokens > 0


def test_keys_bodies_rates_and_bad_requests(serving, tmp_path):
    digest_file = tmp_path / "keys.sha256"
    import hashlib

    digest_file.write_text(hashlib.sha256(b"sk-from-file").hexdigest() + "\n")
    keys = Keys.load(keys_file=digest_file, environ={})
    with serving("zero_shot", keys=keys, limits=Limits(max_body_bytes=2_000, per_minute=3, max_input_chars=200)) as s:
        url = f"{s.base_url}/chat/completions"
        body = {"model": s.model_id, "messages": [{"role": "user", "content": "What is the capital of Alania?"}]}
        assert httpx.post(url, json=body).status_code == 401
        assert httpx.post(url, json=body, headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
        auth = {"Authorization": "Bearer sk-from-file"}
        assert httpx.post(url, json=body, headers=auth).status_code == 200
        big = httpx.post(url, json={**body, "messages": [{"role": "user", "content": "x" * 5_000}]}, headers=auth)
        assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
        long = httpx.post(url, json={**body, "messages": [{"role": "user", "content": "y" * 300}]}, headers=auth)
        assert long.status_code == 400 and "more than the 200 allowed" in long.json()["error"]["message"]
        limited = httpx.post(url, json=body, headers=auth)  # the fourth request of the minute (three a minute)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    with serving("zero_shot", keys=Keys.load(no_auth=True)) as s:
        url = f"{s.base_url}/chat/completions"
        for bad, status, param in [
            ({"model": s.model_id, "messages": [{"role": "system", "content": "hi"}]}, 400, "messages"),
            ({"model": s.model_id, "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
             400, "tools"),
            ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
            ({"model": s.model_id, "messages": [{"role": "user", "content": "x"}], "n": 0}, 400, "n"),
        ]:
            reply = httpx.post(url, json=bad)
            assert (reply.status_code, reply.json()["error"]["param"]) == (status, param), reply.text
        assert httpx.post(url, content=b"{not json").status_code == 400
        metrics = httpx.get(f"{s.base_url.removesuffix('/v1')}/metrics").text
        assert 'tunewise_requests_total{status="400"} 4.0' in metrics and "tunewise_in_flight 0.0" in metrics
        assert httpx.get(f"{s.base_url.removesuffix('/v1')}/healthz").json()["arm"] == "zero_shot"


def test_traffic_is_logged_and_exported_as_data(measured, serving, tmp_path):
    from tunewise.taskfile import load_task

    with serving("zero_shot") as s:
        client = openai.OpenAI(base_url=s.base_url, api_key=KEY, max_retries=0)
        for country in ("Alania", "Borberia", "Alania"):
            client.chat.completions.create(model=s.model_id, messages=[{"role": "user", "content": f"What is the capital of {country}?"}])
    out = tmp_path / "served.jsonl"
    proc = subprocess.run([sys.executable, "-m", "tunewise.cli", "traffic", measured[0], "--out", str(out), "--runs-dir",
                           str(measured[1])], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question"] for r in rows] == ["What is the capital of Alania?", "What is the capital of Borberia?"]
    assert all(r["id"].startswith("chatcmpl-") and r["served_answer"] for r in rows)
    task = load_task(measured[2])
    assert set(task.data.input_fields) <= set(rows[0])  # ready to label with the task's output and run again
    from tunewise.db import connect

    db = connect(measured[1] / "tunewise.db")
    logged = db.execute("SELECT key_id, status, tokens_in, cost FROM served ORDER BY id").fetchall()
    assert len(logged) == 3 and all(k and len(k) == 12 and KEY not in k for k, *_ in logged)
    assert all(status == 200 and tokens > 0 for _, status, tokens, _ in logged)


def cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tunewise.cli", *args], capture_output=True, text=True, timeout=120,
                          **kwargs)  # type: ignore[call-overload]


def test_a_changed_corpus_or_missing_keys_refuse_to_start_in_one_line(measured):
    run_id, runs, task = measured
    no_keys = cli("serve", run_id, "--runs-dir", str(runs), env={k: v for k, v in os.environ.items()
                                                                   if k != "TUNEWISE_API_KEYS"})
    assert no_keys.returncode == 2 and no_keys.stderr.count("\n") == 1 and "TUNEWISE_API_KEYS" in no_keys.stderr
    (task.parent / "docs" / "d0.md").write_text("# Zorabia\n\nThe capital of Zorabia moved to Elsewhere.\n")
    changed = cli("serve", run_id, "--arm", "rag", "--no-auth", "--runs-dir", str(runs))
    assert changed.returncode == 2 and changed.stderr.count("\n") == 1, changed.stderr
    assert "documents changed" in changed.stderr and "Traceback" not in changed.stderr
    unknown = cli("serve", run_id, "--arm", "nope", "--no-auth", "--runs-dir", str(runs))
    assert unknown.returncode == 2 and "has no arm 'nope'" in unknown.stderr


def test_sigterm_drains_the_requests_in_flight(measured, server):
    run_id, runs, _ = measured
    server.delay_s = 1.5  # every model call now takes 1.5 s
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tunewise.cli", "serve", run_id, "--arm", "zero_shot", "--no-auth",
                             "--no-cache", "--port", str(port), "--runs-dir", str(runs)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        replies: list[httpx.Response] = []
        body = {"model": "tunewise/capitals/zero_shot", "messages": [{"role": "user", "content": "What is the capital of Alania?"}]}
        ask = threading.Thread(target=lambda: replies.append(httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30)))
        ask.start()
        time.sleep(0.5)  # the request is in flight, waiting on the model
        proc.send_signal(signal.SIGTERM)
        ask.join(30)
        assert proc.wait(30) == 0
        assert replies and replies[0].status_code == 200
        assert replies[0].json()["choices"][0]["message"]["content"] == "The capital of Alania is AnAlville."
    finally:
        server.delay_s = 0.0
        if proc.poll() is None:
            proc.kill()


def test_serve_help_is_fast_and_imports_no_model_library():
    code = ("import sys\nfrom tunewise.cli import app\ntry:\n    app(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'fastapi', 'uvicorn', 'lancedb', 'scipy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert "--no-auth" in proc.stdout and "--api-keys-file" in proc.stdout


def test_an_asgi_app_that_loads_the_arm_at_start_up(measured):
    from starlette.testclient import TestClient

    from tunewise.serve import app_for

    with TestClient(app_for(measured[0], measured[1], arm="zero_shot", keys=Keys.load(no_auth=True))) as client:
        reply = client.post("/v1/chat/completions", json={
            "model": "tunewise/capitals/zero_shot", "messages": [{"role": "user", "content": "What is the capital of Alania?"}]})
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "The capital of Alania is AnAlville."


def test_a_slow_model_is_a_504_and_a_failing_one_a_502(serving, server):
    with serving("zero_shot", keys=Keys.load(no_auth=True), limits=Limits(timeout_s=0.3), read_cache=False) as s:
        url = f"{s.base_url}/chat/completions"
        body = {"model": s.model_id, "messages": [{"role": "user", "content": "What is the capital of Borberia?"}]}
        server.delay_s = 1.0
        try:
            slow = httpx.post(url, json=body, timeout=30)
        finally:
            server.delay_s = 0.0
        assert slow.status_code == 504 and "did not answer within 0.3 s" in slow.json()["error"]["message"]
        server.api_key = "sk-the-model-server-wants-this"  # the model now refuses tunewise's calls: 401, for good
        try:
            failing = httpx.post(url, json={**body, "messages": [{"role": "user", "content": "What is the capital of Dorcoria?"}]},
                                 timeout=30)
        finally:
            server.api_key = None
        assert failing.status_code == 502 and failing.json()["error"]["code"] == "upstream_error"
