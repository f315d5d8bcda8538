"""``rawchat batch IN OUT --remote``: the same input and output, through the Batch API.

The provider runs the requests within 24 hours at half the price
(https://platform.openai.com/docs/guides/batch); the wire is in
``protocol/batches.py``, the calls in ``client/batches.py``. One job::

    plan        plan_batch: one file per endpoint, split over 50,000 requests or 200 MB
    upload      POST /files               each file, purpose=batch
    create      POST /batches             each file as one batch
    poll        GET  /batches/{id}        with backoff, a progress line on stderr
    download    GET  /files/{id}/content  the output and error files, to disk
    join        join_results              by custom_id, back into input order
    write OUT   the records ``rawchat batch`` writes, in input order

``custom_id`` is a line's ``id`` when it has one, else its line number; two
lines with one id are refused before anything is uploaded. A line with
``input`` or ``"api": "responses"`` goes to ``/v1/responses``.

Crash-safe: ``OUT.state.json`` (``STATE_FORMAT``) records each file and
batch the moment the provider names it, and what is about to be sent
before it is sent, written whole (temporary file, fsync, rename). A rerun
of the same command reads it and carries on: it polls the batches already
created, and a request cut off by the crash is looked up rather than sent
again (an upload by its file name, a batch by its metadata), so nothing is
submitted twice. Downloads go to ``OUT.files/`` and appear only once whole;
OUT is written at the end, in one step, and ``OUT.files/`` removed. A
rerun of a finished job fetches nothing. A batch that expires keeps the
lines it finished; the rest go in a new batch. A second process on the
same OUT is refused (a lock on ``OUT.lock``, there while it works, where
the platform has ``fcntl``). The files stay on the provider: delete them with
``client.files.delete`` once OUT is checked.

``STATE_FORMAT`` (JSON)::

    {"format": "rawchat-remote-batch/1",
     "job": "rawchat-<sha256 of the input, 12 hex>-<8 random hex>",
     "input": {"path": "in.jsonl", "sha256": "...", "lines": 23},
     "model": "gpt-4o-mini", "base_url": "https://api.openai.com/v1",
     "cancelled": false, "written": false,
     "batches": [
       {"part": 1, "endpoint": "/v1/chat/completions", "lines": [[1, 20]],
        "requests": 20, "bytes": 4321, "filename": "<job>-1.jsonl",
        "uploading": true, "file_id": "file-...",        (uploading: sent, maybe unanswered)
        "creating": true, "batch_id": "batch_...",       (creating: likewise)
        "status": "completed", "counts": {"total": 20, "completed": 19, "failed": 1},
        "output_file_id": "file-...", "error_file_id": "file-...", "errors": [],
        "downloaded": true, "retry_of": null}]}

``lines`` lists the input line numbers of a batch as inclusive ranges;
``retry_of`` names the part whose unfinished lines a resubmitted batch runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from typing import IO, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

from ..client.client import Client
from ..errors import ConfigError
from ..policies.usage import BATCH_DISCOUNT, UsageMeter
from ..protocol.batches import (
    MAX_REQUESTS_PER_FILE,
    TERMINAL_STATUSES,
    Batch,
    BatchFile,
    BatchLine,
    BatchPlan,
    join_results,
    plan_batch,
    read_results,
)
from ..protocol.completion import Usage
from ..protocol.settings import Settings
from ..storage import atomic_write
from .batch import read_lines
from .console import EXIT_API, EXIT_INTERRUPTED, EXIT_OK

__all__ = [
    "STATE_FORMAT",
    "RemoteSummary",
    "cancel_remote_batch",
    "describe_plan",
    "remote_status",
    "run_remote_batch",
    "state_path",
]

STATE_FORMAT = "rawchat-remote-batch/1"
#: The longest wait between two polls, however long the batches take.
MAX_POLL = 60.0


@dataclass(frozen=True)
class RemoteSummary:
    """What a run of the job came to.

    ``written``: OUT holds every line (``ok`` answers, ``errors`` failures);
    otherwise the batches are still running (``--no-wait``). ``submitted``:
    batches created by this run; ``cost``: USD at Batch API prices of the
    usage written by this run (``None`` when nothing was priced).
    """

    total: int
    batches: int
    submitted: int
    written: bool
    ok: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Optional[float] = None


def state_path(out_path: str) -> str:
    """Where the job of ``out_path`` is recorded."""
    return out_path + ".state.json"


# -- the job ---------------------------------------------------------------------------


class _Job:
    """The state file, the plan it was made from, and the steps that move it on."""

    def __init__(
        self,
        client: Optional[Client],
        in_path: str,
        out_path: str,
        model: Optional[str],
        max_requests: int = MAX_REQUESTS_PER_FILE,
    ) -> None:
        self.client = client
        self.in_path, self.out_path = in_path, out_path
        self.path = state_path(out_path)
        self.files_dir = out_path + ".files"
        texts = read_lines(in_path)
        self.digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
        self.model = model
        #: Duplicate ids are refused here, before anything is uploaded.
        self.plan: BatchPlan = plan_batch(texts, model=model, max_requests=max_requests)
        self.by_line = {line.line: line for line in self.plan.lines}
        # The local batch gives a line that is no JSON object no "id" at all.
        self.anonymous = {
            bad.line for bad in self.plan.invalid if not _is_object(texts[bad.line - 1])
        }
        self.state: Dict[str, Any] = _load(self.path)
        self.submitted = 0

    # -- the state file --------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return bool(self.state)

    @property
    def batches(self) -> List[Dict[str, Any]]:
        return self.state["batches"]  # type: ignore[no-any-return]

    def begin(self, base_url: str) -> None:
        """A new job's state, or a check that the recorded one is this job's."""
        if self.exists:
            self.check(base_url)
            return
        if os.path.exists(self.out_path):
            raise ConfigError(
                f"{self.out_path} exists and no remote job is recorded for it "
                f"({self.path} is missing)",
                hint="a remote batch writes OUT whole at the end: choose another OUT, "
                "or remove this one",
            )
        job = f"rawchat-{self.digest[:12]}-{os.urandom(4).hex()}"
        self.state = {
            "format": STATE_FORMAT,
            "job": job,
            "input": {"path": self.in_path, "sha256": self.digest, "lines": self.plan.total},
            "model": self.model,
            "base_url": base_url,
            "cancelled": False,
            "written": False,
            "batches": [],
        }
        for batch_file in self.plan.files:
            self._add(batch_file, retry_of=None)
        self.save()

    def check(self, base_url: Optional[str]) -> None:
        """The recorded job is this input's, with this model, on ``base_url`` (if given)."""
        recorded = self.state
        if recorded.get("format") != STATE_FORMAT:
            raise ConfigError(f"{self.path} is not a rawchat remote batch state file")
        if recorded["input"]["sha256"] != self.digest:
            raise ConfigError(
                f"{self.in_path} has changed since the job in {self.path} was submitted",
                hint="rerun with the input as it was, or write to another OUT for a new job",
            )
        if recorded.get("model") != self.model:
            raise ConfigError(
                f"the job in {self.path} was planned with model {recorded.get('model')!r}, "
                f"this run asks for {self.model!r}",
                hint="rerun with the same --model, or write to another OUT for a new job",
            )
        if base_url is not None and recorded.get("base_url") != base_url:
            raise _elsewhere(self.path, recorded.get("base_url"), base_url)

    def save(self) -> None:
        atomic_write(self.path, json.dumps(self.state, ensure_ascii=False, indent=1) + "\n")

    def _add(self, batch_file: BatchFile, retry_of: Optional[int]) -> Dict[str, Any]:
        part = len(self.batches) + 1
        entry = {
            "part": part,
            "endpoint": batch_file.endpoint,
            "lines": _ranges(line.line for line in batch_file.lines),
            "requests": len(batch_file.lines),
            "bytes": len(batch_file.data),
            "filename": f"{self.state['job']}-{part}.jsonl",
            "uploading": False,
            "file_id": None,
            "creating": False,
            "batch_id": None,
            "status": None,
            "downloaded": False,
            "retry_of": retry_of,
        }
        self.batches.append(entry)
        return entry

    def batch_file(self, entry: Mapping[str, Any]) -> BatchFile:
        """The file of ``entry``, rebuilt from the input exactly as it was uploaded."""
        lines = tuple(self.by_line[number] for number in _numbers(entry["lines"]))
        return BatchFile(entry["endpoint"], lines)

    # -- submitting ------------------------------------------------------------------

    def submit(self) -> None:
        """Upload and create every batch not created yet, recording each step first."""
        if self.state["cancelled"]:
            return
        for entry in self.batches:
            if entry["batch_id"] is None:
                self._submit(entry)

    def _submit(self, entry: Dict[str, Any]) -> None:
        assert self.client is not None
        if entry["file_id"] is None:
            if entry.get("uploading"):  # a crash may have cut off the answer: look first
                entry["file_id"] = self._uploaded(entry)
            if entry["file_id"] is None:
                entry["uploading"] = True
                self.save()
                data = self.batch_file(entry).data
                uploaded = self.client.files.create(
                    data, purpose="batch", filename=entry["filename"]
                )
                entry["file_id"] = uploaded.id
            self.save()
        if entry.get("creating"):
            found = self._created(entry)
            if found is not None:
                self.record_batch(entry, found)
                self.save()
                return
        entry["creating"] = True
        self.save()
        batch = self.client.batches.create(
            input_file_id=entry["file_id"], endpoint=entry["endpoint"],
            metadata={"rawchat_job": self.state["job"], "rawchat_part": str(entry["part"])},
        )  # fmt: skip
        self.submitted += 1
        self.record_batch(entry, batch)
        self.save()

    def _uploaded(self, entry: Mapping[str, Any]) -> Optional[str]:
        assert self.client is not None
        for found in self.client.files.list(purpose="batch"):
            if found.filename == entry["filename"] and found.bytes == entry["bytes"]:
                return found.id
        return None

    def _created(self, entry: Mapping[str, Any]) -> Optional[Batch]:
        assert self.client is not None
        for found in self.client.batches.list():
            if (
                found.metadata.get("rawchat_job") == self.state["job"]
                and found.metadata.get("rawchat_part") == str(entry["part"])
                and found.input_file_id == entry["file_id"]
            ):
                return found
        return None

    # -- waiting ---------------------------------------------------------------------

    def live(self) -> List[Dict[str, Any]]:
        return [e for e in self.batches if e["batch_id"] and e["status"] not in TERMINAL_STATUSES]

    def poll(self) -> bool:
        """Ask after each running batch; whether anything changed."""
        assert self.client is not None
        changed = False
        for entry in self.live():
            before = (entry["status"], entry.get("counts"))
            self.record_batch(entry, self.client.batches.retrieve(entry["batch_id"]))
            changed = changed or before != (entry["status"], entry.get("counts"))
        if changed:
            self.save()
        return changed

    def record_batch(self, entry: Dict[str, Any], batch: Batch) -> None:
        """What the provider says of ``entry``'s batch, into the state (saved by the caller)."""
        counts = batch.request_counts
        entry.update(
            batch_id=batch.id,
            status=batch.status,
            counts={"total": counts.total, "completed": counts.completed, "failed": counts.failed},
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            errors=list(batch.errors),
        )

    def download(self) -> None:
        """Fetch the result files of every batch that has ended, once each."""
        assert self.client is not None
        for entry in self.batches:
            if entry["status"] not in TERMINAL_STATUSES or entry.get("downloaded"):
                continue
            os.makedirs(self.files_dir, exist_ok=True)
            for file_id in (entry.get("output_file_id"), entry.get("error_file_id")):
                if file_id and not os.path.exists(self._local(file_id)):
                    self.client.files.content(file_id, self._local(file_id))
            entry["downloaded"] = True
            self.save()

    def _local(self, file_id: str) -> str:
        return os.path.join(self.files_dir, _safe(file_id) + ".jsonl")

    @property
    def settled(self) -> bool:
        """Every batch ended and downloaded (or, in a cancelled job, never created)."""
        for entry in self.batches:
            if entry["batch_id"] is None and self.state["cancelled"]:
                continue
            if entry["status"] not in TERMINAL_STATUSES or not entry.get("downloaded"):
                return False
        return True

    # -- finishing -------------------------------------------------------------------

    def finish(self) -> Optional[List[Dict[str, Any]]]:
        """The records in input order; or ``None`` after resubmitting the lines of
        expired batches, which the next polls wait for."""
        texts = []
        for entry in self.batches:
            for file_id in (entry.get("output_file_id"), entry.get("error_file_id")):
                if file_id and entry.get("downloaded"):
                    with open(self._local(file_id), encoding="utf-8") as source:
                        texts.append(source.read())
        joined = join_results(self.plan, read_results(*texts))
        # A line's batch is the last one that carried it (a resubmission, if any).
        owner = {n: e["part"] for e in self.batches for n in _numbers(e["lines"])}
        unfinished: Dict[int, List[BatchLine]] = {}
        for line in joined.missing:
            unfinished.setdefault(owner[line.line], []).append(line)
        records = [
            {k: v for k, v in record.items() if k != "id"}
            if record is not None and number in self.anonymous
            else record
            for number, record in enumerate(joined.records, 1)
        ]
        again = False
        for part, lines in unfinished.items():
            entry = self.batches[part - 1]
            if self._worth_again(entry, len(lines)):
                self._add(BatchFile(entry["endpoint"], tuple(lines)), retry_of=part)
                again = True
                continue
            for line in lines:
                records[line.line - 1] = _unfinished(line, entry, self.state["cancelled"])
        if again:
            self.save()
            return None
        return [r for r in records if r is not None]

    def _worth_again(self, entry: Mapping[str, Any], unfinished: int) -> bool:
        """The unfinished lines of an expired batch go again, unless the batch was
        itself a resubmission that finished none (the provider is not getting to them)."""
        if entry["status"] != "expired" or self.state["cancelled"]:
            return False
        return entry["retry_of"] is None or unfinished < entry["requests"]

    def write(self, records: List[Dict[str, Any]], meter: UsageMeter) -> RemoteSummary:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write(self.out_path, text)
        self.state["written"] = True
        self.save()
        shutil.rmtree(self.files_dir, ignore_errors=True)
        before = meter.total.cost, meter.total.prompt_tokens, meter.total.completion_tokens
        priced = False
        for record in records:
            usage = record.get("usage") if record.get("ok") else None
            if usage:
                prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
                counted = meter.record(
                    record["model"] or "", Usage(prompt, completion, prompt + completion),
                    batch=True,
                )  # fmt: skip
                priced = priced or (counted is not None and counted.cost is not None)
        ok = sum(1 for r in records if r.get("ok"))
        return RemoteSummary(
            total=len(records), batches=len(self.batches), submitted=self.submitted,
            written=True, ok=ok, errors=len(records) - ok,
            prompt_tokens=meter.total.prompt_tokens - before[1],
            completion_tokens=meter.total.completion_tokens - before[2],
            cost=meter.total.cost - before[0] if priced else None,
        )  # fmt: skip

    def progress(self) -> str:
        done = failed = total = 0
        statuses: Dict[str, int] = {}
        for entry in self.batches:
            counts = entry.get("counts") or {}
            total += entry["requests"]
            done += counts.get("completed", 0) + counts.get("failed", 0)
            failed += counts.get("failed", 0)
            status = entry["status"] or "not created"
            statuses[status] = statuses.get(status, 0) + 1
        shown = ", ".join(f"{n} {s}" for s, n in statuses.items())
        return f"rawchat batch --remote: {done}/{total} requests done ({failed} failed); {shown}"


# -- the commands --------------------------------------------------------------------


def run_remote_batch(
    client: Client,
    in_path: str,
    out_path: str,
    *,
    model: Optional[str] = None,
    wait: bool = True,
    poll: float = 5.0,
    progress: Optional[IO[str]] = None,
    meter: Optional[UsageMeter] = None,
    max_requests: int = MAX_REQUESTS_PER_FILE,
) -> RemoteSummary:
    """Submit ``in_path`` as batches (or resume the job recorded for ``out_path``),
    then, with ``wait``, poll until every line has a result and write ``out_path``.

    ``poll`` is the first wait between polls; it grows by half each time, up
    to a minute. Usage goes to ``meter`` (the client's, else a new one) at
    Batch API prices. ``max_requests`` caps a file's requests (at most the
    provider's 50,000); a new job's files are planned with it.
    """
    with _locked(out_path):
        job = _Job(client, in_path, out_path, model, max_requests)
        if job.exists and job.state["written"] and os.path.exists(out_path):
            job.check(None)  # done: nothing to ask the provider, wherever it is
            ok = _count_ok(out_path)
            return RemoteSummary(job.plan.total, len(job.batches), 0, True, ok, job.plan.total - ok)
        job.begin(client.settings.base_url)
        if job.state["written"]:  # OUT was removed since: its files are fetched again
            for entry in job.batches:
                entry["downloaded"] = False
            job.state["written"] = False
        job.submit()
        if not wait:
            _report(progress, job.progress(), final=True)
            return RemoteSummary(job.plan.total, len(job.batches), job.submitted, False)
        meter = meter or client.policies.usage or UsageMeter()
        return _wait(job, client, poll, progress, meter)


def _wait(
    job: _Job, client: Client, poll: float, progress: Optional[IO[str]], meter: UsageMeter
) -> RemoteSummary:
    delay, longest = poll, max(poll, MAX_POLL)
    shown = ""
    while True:
        job.poll()
        job.download()
        if job.settled:
            records = job.finish()
            if records is not None:
                _report(progress, job.progress(), final=True)
                return job.write(records, meter)
            job.submit()  # the lines of expired batches, again
            delay = poll
            continue
        text = job.progress()
        if text != shown:
            _report(progress, text)
            shown = text
        client.clock.sleep(delay)
        delay = min(longest, delay * 1.5)


def remote_status(client: Client, in_path: str, out_path: str, out: IO[str]) -> int:
    """Print the job's batches as the provider sees them now; the number of
    batches still running. Reads the state file, never writes it."""
    state = _load(state_path(out_path))
    if not state:
        raise ConfigError(
            f"no remote job is recorded for {out_path} ({state_path(out_path)} is missing)",
            hint=f"start one: rawchat batch {in_path} {out_path} --remote",
        )
    if state["base_url"] != client.settings.base_url and not state["written"]:
        raise _elsewhere(state_path(out_path), state["base_url"], client.settings.base_url)
    lines = state["input"]["lines"]
    written = "written" if state["written"] else "not written yet"
    cancelled = ", cancelled" if state["cancelled"] else ""
    out.write(
        f"job {state['job']}: {lines} lines, {len(state['batches'])} batches, "
        f"{out_path} {written}{cancelled}\n"
    )
    running = 0
    for entry in state["batches"]:
        status, counts = entry["status"] or "not created", entry.get("counts") or {}
        if entry["batch_id"] and status not in TERMINAL_STATUSES:
            batch = client.batches.retrieve(entry["batch_id"])
            status, found = batch.status, batch.request_counts
            counts = {"total": found.total, "completed": found.completed, "failed": found.failed}
            running += 0 if batch.finished else 1
        done = counts.get("completed", 0) + counts.get("failed", 0)
        again = f", resubmits part {entry['retry_of']}" if entry["retry_of"] else ""
        out.write(
            f"  part {entry['part']}: {entry['batch_id'] or '-'} {entry['endpoint']} {status} "
            f"{done}/{entry['requests']} done ({counts.get('failed', 0)} failed), "
            f"file {entry['file_id'] or '-'}{again}\n"
        )
    return running


def cancel_remote_batch(client: Client, in_path: str, out_path: str, model: Optional[str]) -> int:
    """Cancel the job's running batches and submit nothing more; the number cancelled.

    A later run collects what finished and writes OUT, the lines that never
    ran marked ``batch_cancelled``.
    """
    with _locked(out_path):
        job = _Job(client, in_path, out_path, model)
        if not job.exists:
            raise ConfigError(
                f"no remote job is recorded for {out_path} ({job.path} is missing)",
                hint="there is nothing to cancel",
            )
        job.begin(client.settings.base_url)
        job.state["cancelled"] = True
        job.save()
        cancelled = 0
        for entry in job.live():
            job.record_batch(entry, client.batches.cancel(entry["batch_id"]))
            cancelled += 1
            job.save()
        return cancelled


def describe_plan(in_path: str, out_path: str, model: Optional[str], out: IO[str]) -> None:
    """``--dry-run``: the files and requests a run would create. No network, no files."""
    job = _Job(None, in_path, out_path, model)
    plan = job.plan
    files = len(plan.files)
    out.write(
        f"{in_path}: {plan.total} lines -> {files} file{'s' * (files != 1)} to upload, "
        f"{files} batch{'es' * (files != 1)} to create (nothing is sent)\n"
    )
    for number, batch_file in enumerate(plan.files, 1):
        data = batch_file.lines
        out.write(
            f"  file {number}: POST {batch_file.endpoint}, {len(data)} request"
            f"{'s' * (len(data) != 1)}, {len(batch_file.data):,} bytes\n"
        )
        shown = data if len(data) <= 3 else (data[0], data[1], data[-1])
        for index, line in enumerate(shown):
            if len(data) > 3 and index == 2:
                out.write(f"    ... {len(data) - 3} more\n")
            out.write("    " + _clip(line.to_jsonl().decode("utf-8").rstrip("\n")) + "\n")
    for bad in plan.invalid:
        out.write(f"  line {bad.line} is not sent (it gets an error result): {bad.message}\n")
    if job.exists:
        out.write(
            f"a job is recorded in {job.path} ({len(job.batches)} batches): a run resumes "
            "it and submits nothing again\n"
        )


# -- the command line ----------------------------------------------------------------


def run(args: Any, make_client: Any, out: IO[str], err: IO[str]) -> int:
    """``rawchat batch --remote`` and its modes, from parsed arguments.

    ``make_client`` is called only by the modes that talk to the provider.
    """
    if args.dry_run:
        settings = Settings.resolve(
            base_url=args.base_url, profile=args.profile, environ=os.environ
        )
        describe_plan(args.input, args.output, args.model or settings.model or None, out)
        return EXIT_OK
    with make_client() as client:
        model = args.model or client.settings.model or None
        if args.status:
            remote_status(client, args.input, args.output, out)
            return EXIT_OK
        if args.cancel:
            count = cancel_remote_batch(client, args.input, args.output, model)
            err.write(f"rawchat: cancelled {count} running batch{'es' * (count != 1)}\n")
            if args.no_wait:
                return EXIT_OK
        try:
            summary = run_remote_batch(
                client, args.input, args.output, model=model, wait=not args.no_wait,
                poll=args.poll, progress=err,
            )  # fmt: skip
        except KeyboardInterrupt:
            err.write(
                "\nrawchat: stopped waiting; the batches go on at the provider: rerun the "
                "same command to collect them\n"
            )
            return EXIT_INTERRUPTED
    if not summary.written:
        err.write(
            f"rawchat: {summary.batches} batch{'es' * (summary.batches != 1)} submitted; "
            f"rerun the same command to collect them (--status shows where they are)\n"
        )
        return EXIT_OK
    cost = ""
    if summary.cost is not None:
        cost = f", ${summary.cost:.6f} at Batch API prices ({BATCH_DISCOUNT:.0%} of the listed)"
    usage = ""
    if summary.prompt_tokens or summary.completion_tokens:
        usage = f"; {summary.prompt_tokens} prompt + {summary.completion_tokens} completion tokens"
    err.write(
        f"rawchat: {args.output}: {summary.total} lines, {summary.ok} ok, {summary.errors} "
        f"errors{usage}{cost}\n"
    )
    return EXIT_OK if summary.errors == 0 else EXIT_API


# -- helpers -------------------------------------------------------------------------


def _load(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as source:
            state = json.load(source)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read {path}: {exc}",
            hint="it records a remote job's files and batches; restore it, or remove it "
            "(and OUT) to start a new job",
        ) from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ConfigError(f"{path} is not a rawchat remote batch state file")
    return state


@contextlib.contextmanager
def _locked(out_path: str) -> Iterator[None]:
    """One process at a time on a job: two would both submit."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    path = out_path + ".lock"
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(
                f"another rawchat batch --remote is working on {out_path}",
                hint="wait for it, or stop it first (it can be rerun: it resumes)",
            ) from None
        try:
            yield
        finally:
            os.remove(path)  # still held: a process that opens it now finds a new file


def _elsewhere(path: str, recorded: Any, base_url: str) -> ConfigError:
    return ConfigError(
        f"the job in {path} was submitted to {recorded}, this run talks to {base_url}",
        hint="rerun with the same base URL and key (a batch lives on its provider)",
    )


def _report(progress: Optional[IO[str]], text: str, final: bool = False) -> None:
    if progress is None:
        return
    if hasattr(progress, "isatty") and progress.isatty():
        progress.write("\r" + text + ("\n" if final else ""))
    else:
        progress.write(text + "\n")
    progress.flush()


def _unfinished(line: BatchLine, entry: Mapping[str, Any], cancelled: bool) -> Dict[str, Any]:
    """The record of a line its batch never ran."""
    status = entry["status"]
    if status == "failed":
        reasons = "; ".join(entry.get("errors") or ()) or "the provider refused the batch"
        error = {"type": "batch_failed", "message": f"the batch failed: {reasons}"}
    elif status in ("cancelled", "cancelling") or cancelled:
        error = {"type": "batch_cancelled", "message": "the batch was cancelled before it ran"}
    elif status == "expired":
        error = {
            "type": "batch_expired",
            "message": "the batch expired twice before it ran; submit it again later",
        }
    else:
        error = {"type": "BatchError", "message": "the batch ended without a result for it"}
    return {"line": line.line, "id": line.id, "ok": False, "error": error}


def _ranges(numbers: Iterable[int]) -> List[List[int]]:
    """Line numbers as inclusive ``[first, last]`` runs: 50,000 lines in a few bytes."""
    runs: List[List[int]] = []
    for number in numbers:
        if runs and runs[-1][1] == number - 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return runs


def _numbers(runs: Sequence[Sequence[int]]) -> List[int]:
    return [n for first, last in runs for n in range(first, last + 1)]


def _safe(file_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in file_id)


def _clip(text: str, width: int = 160) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _count_ok(out_path: str) -> int:
    with open(out_path, encoding="utf-8") as source:
        return sum(1 for line in source if line.strip() and json.loads(line).get("ok"))
