"""Video jobs, as OpenAI's Videos API has them: created at once, run in the background, polled.

A job is one JSON file under ``GENLAB_HOME/videos/`` (written atomically), so it outlives the
process: a server that starts finds the jobs an earlier process left queued or in progress and
marks them ``failed`` (code ``server_restarted``): never silently lost, never half-done. The work
is the pipeline's, as for every generation: the guardrails on the prompt, the model's queue
(a full queue fails the job with ``queue_full``), provenance, the review rule and the record.
A job holds its owner's key id; the routes show it to that key only (and to reviewers).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.core import GenerationRequest, GenlabError
from genlab.core.io import atomic_write_json
from genlab.pipeline import Caller, Pipeline

JOB_ID = re.compile(r"^video_[0-9a-f]{32}$")  # the only names a job file may have
UNFINISHED = ("queued", "in_progress")


@dataclass
class VideoJob:
    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    key_id: int | None
    created_at: int = field(default_factory=lambda: int(time.time()))
    status: str = "queued"  # queued, in_progress, completed, failed
    progress: int = 0  # percent
    completed_at: int | None = None
    error: dict[str, Any] | None = None  # {"code", "message"} when failed
    record_id: str | None = None  # the generation record of the clip
    review: dict[str, Any] | None = None  # set when the review rule holds the clip

    def to_openai(self) -> dict[str, Any]:
        """The ``video`` object of OpenAI's Videos API (what ``client.videos.retrieve`` parses)."""
        body = {
            k: getattr(self, k) for k in ("id", "model", "prompt", "seconds", "size", "status", "progress")
        }
        genlab = {"generation_id": self.record_id, **({"review": self.review} if self.review else {})}
        return {
            **body,
            "object": "video",
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "expires_at": None,
            "error": self.error,
            "remixed_from_video_id": None,
            "genlab": genlab,
        }


class VideoJobs:
    def __init__(self, directory: Path, pipeline: Pipeline, workers: int = 1) -> None:
        self.directory = Path(directory)
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._jobs: dict[str, VideoJob] = {}
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="video-job")
        self._recover()

    def _recover(self) -> None:
        """Read the jobs on disk; those an earlier process left unfinished are failed now."""
        if not self.directory.is_dir():
            return
        import json

        for path in sorted(self.directory.glob("video_*.json")):
            try:
                job = VideoJob(**json.loads(path.read_text("utf-8")))
            except (ValueError, TypeError):
                continue  # not a job this version wrote: leave it alone
            if job.status in UNFINISHED:
                message = "the server restarted before this job finished; create it again"
                job.status, job.error = "failed", {"code": "server_restarted", "message": message}
                self._save(job)
            self._jobs[job.id] = job

    def _save(self, job: VideoJob) -> None:
        atomic_write_json(self.directory / f"{job.id}.json", asdict(job))

    def submit(
        self, job_fields: dict[str, Any], request: GenerationRequest, caller: Caller, raw: dict
    ) -> VideoJob:
        job = VideoJob(id=f"video_{secrets.token_hex(16)}", key_id=caller.key_id, **job_fields)
        with self._lock:
            self._jobs[job.id] = job
            self._save(job)
        self._executor.submit(self._run, job, request, caller, raw)
        return job

    def _update(self, job: VideoJob, **changes: Any) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(job, k, v)
            if job.id in self._jobs:  # a deleted job is not written back
                self._save(job)

    def _run(self, job: VideoJob, request: GenerationRequest, caller: Caller, raw: dict) -> None:
        self._update(job, status="in_progress")
        last = [0]

        def on_step(done: int, total: int) -> None:
            percent = min(99, int(100 * done / max(total, 1)))
            if percent >= last[0] + 10:  # a write per tenth: progress without a write per step
                last[0] = percent
                self._update(job, progress=percent)

        try:
            released = self.pipeline.generate(
                request, endpoint="videos", modalities=("video",), caller=caller, raw=raw, progress=on_step
            )
        except GenlabError as e:
            error = {"code": e.code or type(e).__name__, "message": str(e)}
            self._update(job, status="failed", error=error, completed_at=int(time.time()))
            return
        except Exception as e:  # a bug must fail the job, not leave it in progress for ever
            error = {"code": "internal_error", "message": f"{type(e).__name__}: {e}"}
            self._update(job, status="failed", error=error, completed_at=int(time.time()))
            return
        record_id = released.record_ids[0] if released.record_ids else None
        self._update(
            job,
            status="completed",
            progress=100,
            completed_at=int(time.time()),
            record_id=record_id,
            review=released.review,
        )

    def get(self, job_id: str) -> VideoJob | None:
        if not JOB_ID.match(job_id):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def owned_by(self, visible) -> list[VideoJob]:
        """Every job ``visible(key_id)`` lets the caller see, newest first."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if visible(j.key_id)]
        return sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)

    def delete(self, job: VideoJob) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
            (self.directory / f"{job.id}.json").unlink(missing_ok=True)

    def wait(self, timeout: float = 60.0) -> None:
        """Until every job submitted so far has run (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            j.status in UNFINISHED for j in self.owned_by(lambda _: True)
        ):
            time.sleep(0.05)
