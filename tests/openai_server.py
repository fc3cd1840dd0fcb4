"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

Its "model" is scripted (a scripted model belongs in tests/, never in the product): it knows the
capital of every country in CAPITALS. Asked zero-shot it answers in a sentence; shown
demonstrations it answers with the bare name, as the demonstrations do. Its embeddings
(`/v1/embeddings`) are hashed bags of words, so a query points the way of the passages that share
its words. It counts every request it receives, can inject faults (429 with Retry-After, 500,
dropped connections: at random, or queued with `inject`), can demand an API key, and stops by itself.

Sampled (temperature > 0) it is noisy where a real model would be: it is sure of half the countries,
right only half the time on three in eight (a wrong capital otherwise), and makes up a capital for
the ones it does not know, each sample drawn afresh and deterministically (by the messages and how
many samples of them it has drawn). It also judges: asked whether an answer is correct it says yes
when the answer holds the capital it knows; asked which of two answers is better it picks the one
that does, else always "A" (a position bias to cancel); asked whether it needs to look a question up
it says no for every country it has heard of, even the ones it does not know (a knowing-doing gap).

It also fine-tunes, as far as a client can tell: `/v1/files` keeps uploads, `/v1/fine_tuning/jobs`
creates jobs that go validating_files -> running -> succeeded as they are polled, and the model a job
makes answers chat in the format its training data taught (the bare capital, without demonstrations).

It streams (`stream: true`, server-sent events): one chunk per word piece, a usage chunk at the end when
`stream_options.include_usage` asks for it, and, as a real server does, it stops generating when the client
hangs up; `streams` records how many pieces each stream sent. A `writer` (messages -> text) replaces the
capitals script, for a generator with known behaviour (tests/synth_writer.py).
"""

from __future__ import annotations

import base64
import collections
import email.parser
import email.policy
import hashlib
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

CAPITALS = {
    f"{a}{b}ia": f"{b.title()}{a}ville"
    for a in ("Al", "Bor", "Cam", "Dor", "El", "Fen", "Gal", "Hul", "Ist", "Jor")
    for b in ("an", "ber", "cor", "dul", "eth", "far", "gim", "hor")
}
EMBEDDING_DIM = 256


def messages_hash(messages: list[dict[str, str]]) -> str:
    """Identity of a request by its messages: the test's way to spot a re-sent call."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def scripted_answer(messages: list[dict[str, str]], *, tuned: bool = False) -> str:
    """The scripted model: bare answer after demonstrations (or when fine-tuned), a sentence without;
    1 in 8 unknown. Given retrieved context that states the capital, it answers from the context."""
    question = messages[-1]["content"]
    context = ""
    if question.startswith("Context:\n"):
        context, _, question = question.partition("\n\nInput:\n")
    country = question.rsplit(" ", 1)[-1].rstrip("?")
    stated = re.search(rf"capital of {re.escape(country)} is (\w+)", context)
    if stated:
        return stated.group(1)
    capital = CAPITALS.get(country)
    if capital is None or int(hashlib.md5(country.encode()).hexdigest(), 16) % 8 == 0:
        return "I do not know."
    if tuned or any(m["role"] == "assistant" for m in messages):
        return capital
    return f"The capital of {country} is {capital}."


def _country(text: str) -> str | None:
    m = re.search(r"capital of (\w+)\?", text)
    return m.group(1) if m else None


def certainty(country: str) -> str:
    """How the scripted model knows a country: "sure", "noisy" (right half the time when sampled) or "unknown"."""
    if country not in CAPITALS:
        return "unknown"
    bucket = int(hashlib.md5(country.encode()).hexdigest(), 16) % 8
    return "unknown" if bucket == 0 else "noisy" if bucket in (1, 2, 3) else "sure"


def _decoys(country: str) -> list[str]:
    others = sorted(set(CAPITALS.values()) - {CAPITALS.get(country)})
    return random.Random(f"decoys:{country}").sample(others, 3)


def sampled_answer(messages: list[dict[str, str]], draw: int) -> str:
    """The scripted model at temperature > 0: draw number `draw` of these messages."""
    question = messages[-1]["content"]
    country = _country(question.partition("\n\nInput:\n")[2] or question)
    if country is None or "Context:\n" in question:
        return scripted_answer(messages)
    rng = random.Random(f"{messages_hash(messages)}:{draw}")
    kind = certainty(country)
    if kind == "sure" or (kind == "noisy" and rng.random() < 0.5):
        capital = CAPITALS[country]
    else:
        capital = rng.choice(_decoys(country)) if kind == "noisy" else f"{rng.choice(['Nor', 'Sud', 'Ost', 'Wes'])}{rng.randrange(100)}ton"
    if any(m["role"] == "assistant" for m in messages):
        return capital
    return f"The capital of {country} is {capital}."


def judged(messages: list[dict[str, str]]) -> str | None:
    """The scripted judge's verdict when `messages` ask for one (critic, comparator, stated need), else None."""
    asked = messages[-1]["content"]
    country = _country(asked)
    truth = CAPITALS.get(country or "") if certainty(country or "") != "unknown" else None

    def holds(answer: str) -> bool:
        return truth is not None and re.search(rf"\b{truth}\b", answer) is not None

    if "Is this answer correct?" in asked:
        return "Yes." if holds(asked.partition("Proposed answer:\n")[2]) else "No."
    if "Which answer is better, A or B?" in asked:
        a, _, b = asked.partition("Answer A:\n")[2].partition("\n\nAnswer B:\n")
        return "B" if holds(b.partition("\n\nWhich")[0]) and not holds(a) else "A"
    if "Do you need to look this up" in asked:
        return "No." if country in CAPITALS else "Yes."
    return None


def bag_of_words(text: str, dim: int) -> list[float]:
    """Word counts hashed into `dim` slots; deliberately not unit length (clients must normalise)."""
    vector = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    return vector


@dataclass
class Log:
    """What the server saw, in order: (messages hash, status or 'dropped', monotonic time)."""

    entries: list[tuple[str, object, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, digest: str, status: object) -> None:
        with self.lock:
            self.entries.append((digest, status, time.monotonic()))

    def completed(self) -> list[str]:
        with self.lock:
            return [d for d, s, _ in self.entries if s == 200]


@dataclass
class Streamed:
    """One streamed answer: the request's messages hash, pieces sent, pieces it had, and whether the client hung up."""

    digest: str
    sent: int
    pieces: int
    hung_up: bool


STREAM_PIECES = re.compile(r"\s*\S+")


@dataclass
class EmbeddingLog(Log):
    """Embedding requests as (hash of the inputs, status, time), and every text embedded, in order."""

    texts: list[str] = field(default_factory=list)

    def embedded(self, digest: str, texts: list[str]) -> None:
        with self.lock:
            self.entries.append((digest, 200, time.monotonic()))
            self.texts.extend(texts)


@dataclass
class FineTuning:
    """Uploaded files and fine-tuning jobs; a job succeeds on its `polls_to_finish`-th status check."""

    polls_to_finish: int = 3
    files: dict[str, dict] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, dict] = field(default_factory=dict)
    polls: collections.Counter = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def upload(self, filename: str, purpose: str, content: bytes) -> dict:
        with self.lock:
            file = {"id": f"file-{len(self.files) + 1}", "object": "file", "bytes": len(content),
                    "created_at": int(time.time()), "filename": filename, "purpose": purpose, "status": "processed"}
            self.files[file["id"]] = file
            self.contents[file["id"]] = content
            return file

    def create(self, body: dict) -> tuple[int, dict]:
        with self.lock:
            if body.get("training_file") not in self.files:
                return 400, {"error": {"message": f"invalid training_file: {body.get('training_file')}"}}
            n = len(self.jobs) + 1
            job = {"id": f"ftjob-{n}", "object": "fine_tuning.job", "created_at": int(time.time()),
                   "model": body["model"], "training_file": body["training_file"],
                   "validation_file": body.get("validation_file"), "metadata": body.get("metadata"),
                   "seed": body.get("seed") or 0, "status": "validating_files", "fine_tuned_model": None,
                   "finished_at": None, "trained_tokens": None, "error": None, "hyperparameters": {"n_epochs": 1},
                   "organization_id": "org-test", "result_files": []}
            self.jobs[job["id"]] = job
            return 200, job

    def retrieve(self, job_id: str) -> dict | None:
        """The job, one step further along each time it is asked about."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            self.polls[job_id] += 1
            if job["status"] == "validating_files":
                job["status"] = "running"
            if job["status"] == "running" and self.polls[job_id] >= self.polls_to_finish:
                words = sum(len(m["content"].split()) for line in self.contents[job["training_file"]].splitlines()
                            for m in json.loads(line)["messages"])
                job.update(status="succeeded", fine_tuned_model=f"ft:{job['model']}:tunewise:{job['id']}",
                           trained_tokens=words, finished_at=int(time.time()))
            return dict(job)

    def listed(self, metadata: dict[str, str]) -> list[dict]:
        with self.lock:
            return [dict(j) for j in self.jobs.values() if all((j["metadata"] or {}).get(k) == v for k, v in metadata.items())]

    def tuned_models(self) -> set[str]:
        with self.lock:
            return {j["fine_tuned_model"] for j in self.jobs.values() if j["fine_tuned_model"]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        tuning = self.server.fine_tuning
        if url.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
        elif url.path == "/v1/fine_tuning/jobs":
            query = dict(parse_qsl(url.query))
            metadata = {k[len("metadata["):-1]: v for k, v in query.items() if k.startswith("metadata[")}
            self._send(200, {"object": "list", "data": tuning.listed(metadata), "has_more": False})
        elif url.path.startswith("/v1/fine_tuning/jobs/") and (job := tuning.retrieve(url.path.rsplit("/", 1)[1])):
            self._send(200, job)
        else:
            self._send(404, {"error": {"message": "not found"}})

    def _upload(self, raw: bytes) -> None:
        """multipart/form-data with `purpose` and `file`, as the SDK's files.create sends it."""
        head = f"content-type: {self.headers['content-type']}\r\n\r\n".encode()
        form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        parts = {p.get_param("name", header="content-disposition"): p for p in form.iter_parts()}
        file = parts["file"]
        purpose = parts["purpose"].get_payload(decode=True).decode()
        self._send(200, self.server.fine_tuning.upload(file.get_filename(), purpose, file.get_payload(decode=True)))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        raw = self.rfile.read(length)
        if self.path == "/v1/files":
            self._upload(raw)
            return
        body = json.loads(raw or b"{}")
        srv = self.server
        if self.path == "/v1/fine_tuning/jobs":
            self._send(*srv.fine_tuning.create(body))
            return
        answer: Callable[[dict, str], None]
        if self.path == "/v1/chat/completions" and "messages" in body:
            log, digest, answer = srv.log, messages_hash(body["messages"]), self._chat
        elif self.path == "/v1/embeddings" and "input" in body:
            log, digest = srv.embedding_log, hashlib.sha256(json.dumps(body["input"]).encode()).hexdigest()
            answer = self._embeddings
        else:
            self._send(404, {"error": {"message": "not found"}})
            return
        if srv.api_key is not None and self.headers.get("authorization") != f"Bearer {srv.api_key}":
            log.add(digest, 401)
            self._send(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
            return
        if not self._faulted(log, digest):
            answer(body, digest)

    def _faulted(self, log: Log, digest: str) -> bool:
        """Wait `delay_s`, then answer with the fault picked for this request, if any."""
        srv = self.server
        if srv.delay_s:
            time.sleep(srv.delay_s)
        fault = srv.pick_fault()
        if fault == "drop":
            log.add(digest, "dropped")
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        elif fault == 429:
            log.add(digest, 429)
            self._send(
                429,
                {"error": {"message": "rate limited", "type": "rate_limit"}},
                {"retry-after-ms": str(srv.retry_after_ms), "retry-after": "1"},
            )
        elif fault == 500:
            log.add(digest, 500)
            self._send(500, {"error": {"message": "boom", "type": "server_error"}})
        return fault is not None

    def _chat(self, body: dict, digest: str) -> None:
        messages = body["messages"]
        n = int(body.get("n") or 1)
        model = body.get("model", "scripted")
        if model.startswith("ft:") and model not in self.server.fine_tuning.tuned_models():
            self._send(404, {"error": {"message": f"The model {model} does not exist", "code": "model_not_found"}})
            return
        verdict = judged(messages)
        if self.server.writer is not None:
            answers = [self.server.writer(messages)] * n
        elif verdict is not None:
            answers = [verdict] * n
        elif float(body.get("temperature") or 0) > 0:
            first = self.server.draws(digest, n)
            answers = [sampled_answer(messages, first + i) for i in range(n)]
        else:
            answers = [scripted_answer(messages, tuned=model.startswith("ft:"))] * n
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        if body.get("stream"):
            self.server.log.add(digest, 200)
            max_tokens = int(body.get("max_tokens") or 1 << 30)
            pieces = STREAM_PIECES.findall(answers[0])[:max_tokens]
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(digest, model, pieces, prompt_tokens if usage else None)
            return
        choices = [
            {"index": i, "message": {"role": "assistant", "content": a}, "finish_reason": "stop"} for i, a in enumerate(answers)
        ]
        self.server.log.add(digest, 200)
        self._send(
            200,
            {
                "id": f"chatcmpl-{digest[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "scripted"),
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": sum(len(a.split()) for a in answers),
                    "total_tokens": prompt_tokens + sum(len(a.split()) for a in answers),
                },
            },
        )

    def _stream(self, digest: str, model: str, pieces: list[str], prompt_tokens: int | None) -> None:
        """Server-sent events, chunked: a chunk per piece, `stream_delay_s` apart; a client that hangs up ends it."""
        srv = self.server
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        base = {"id": f"chatcmpl-{digest[:12]}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}

        def event(payload: dict | str) -> None:
            data = f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        sent = 0
        try:
            for i, piece in enumerate(pieces):
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                event(base | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                sent += 1
                if srv.stream_delay_s:
                    time.sleep(srv.stream_delay_s)
            event(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if prompt_tokens is not None:
                event(base | {"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": sent,
                                                       "total_tokens": prompt_tokens + sent}})
            event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            srv.record_stream(Streamed(digest, sent, len(pieces), hung_up=True))
            return
        srv.record_stream(Streamed(digest, sent, len(pieces), hung_up=False))

    def _embeddings(self, body: dict, digest: str) -> None:
        texts = [body["input"]] if isinstance(body["input"], str) else list(body["input"])
        dim = int(body.get("dimensions") or EMBEDDING_DIM)
        vectors: list[object] = [bag_of_words(t, dim) for t in texts]
        if body.get("encoding_format") == "base64":
            vectors = [base64.b64encode(struct.pack(f"<{dim}f", *v)).decode() for v in vectors]
        self.server.embedding_log.embedded(digest, texts)
        tokens = sum(len(t.split()) for t in texts)
        self._send(
            200,
            {
                "object": "list",
                "model": body.get("model", "scripted"),
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 drops connections at concurrency 16

    def __init__(self, fault_rate: float, delay_s: float, retry_after_ms: int, seed: int, api_key: str | None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fault_rate = fault_rate
        self.delay_s = delay_s
        self.retry_after_ms = retry_after_ms
        self.api_key = api_key
        self.log = Log()
        self.embedding_log = EmbeddingLog()
        self.fine_tuning = FineTuning()
        self.queued_faults: collections.deque[object] = collections.deque()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._draws: collections.Counter[str] = collections.Counter()
        self.writer: Callable[[list[dict[str, str]]], str] | None = None
        self.stream_delay_s = 0.0
        self.streams: list[Streamed] = []

    def record_stream(self, streamed: Streamed) -> None:
        with self._rng_lock:
            self.streams.append(streamed)

    def draws(self, digest: str, n: int) -> int:
        """Reserve the next n sample draws of a request; returns the number of the first."""
        with self._rng_lock:
            first = self._draws[digest]
            self._draws[digest] += n
            return first

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (killed, interrupted) is expected here, not worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def inject(self, faults: tuple[object, ...]) -> None:
        with self._rng_lock:
            self.queued_faults.extend(faults)

    def pick_fault(self) -> object:
        with self._rng_lock:
            if self.queued_faults:
                return self.queued_faults.popleft()
            if self._rng.random() >= self.fault_rate:
                return None
            return self._rng.choice([429, 500, "drop"])


class OpenAITestServer:
    """Context manager: a loopback server that shuts itself down after `max_lifetime_s`."""

    def __init__(
        self,
        *,
        fault_rate: float = 0.0,
        delay_s: float = 0.0,
        retry_after_ms: int = 30,
        seed: int = 0,
        api_key: str | None = None,
        max_lifetime_s: float = 900,
    ):
        self._server = _Server(fault_rate, delay_s, retry_after_ms, seed, api_key)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._timer = threading.Timer(max_lifetime_s, self._server.shutdown)
        self._timer.daemon = True

    @property
    def log(self) -> Log:
        return self._server.log

    @property
    def embedding_log(self) -> EmbeddingLog:
        return self._server.embedding_log

    @property
    def fine_tuning(self) -> FineTuning:
        return self._server.fine_tuning

    def inject(self, *faults: object) -> None:
        """Answer the next requests (chat or embeddings) with these faults, in order: 429, 500 or "drop"."""
        self._server.inject(faults)

    @property
    def fault_rate(self) -> float:
        return self._server.fault_rate

    @fault_rate.setter
    def fault_rate(self, value: float) -> None:
        self._server.fault_rate = value

    @property
    def delay_s(self) -> float:
        """How long every request waits before it is answered."""
        return self._server.delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        self._server.delay_s = value

    @property
    def api_key(self) -> str | None:
        """The key requests must bear (None: any or none)."""
        return self._server.api_key

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self._server.api_key = value

    @property
    def writer(self) -> Callable[[list[dict[str, str]]], str] | None:
        """What answers chat instead of the capitals script: messages -> the answer's text (None: the script)."""
        return self._server.writer

    @writer.setter
    def writer(self, value: Callable[[list[dict[str, str]]], str] | None) -> None:
        self._server.writer = value

    @property
    def stream_delay_s(self) -> float:
        """The wait between streamed pieces (0: as fast as the socket takes them)."""
        return self._server.stream_delay_s

    @stream_delay_s.setter
    def stream_delay_s(self, value: float) -> None:
        self._server.stream_delay_s = value

    @property
    def streams(self) -> list[Streamed]:
        """Every streamed answer so far, in the order they ended."""
        with self._server._rng_lock:
            return list(self._server.streams)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAITestServer:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()
