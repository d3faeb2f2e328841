"""The studio's FastAPI app: a JSON API over one session's workspace plus the static page.

Every route that touches files lives under ``/api/s/{sid}/`` where ``sid`` is the session's random
id; files are addressed by ids and server-made names only. Errors come back as
``{"error": "one sentence"}`` with a 4xx status (5xx only for bugs), which the page shows as is.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .. import __version__
from ..envelope import Envelope
from ..errors import FolaiError
from .backends import BackendCache, BackendOptions, NoLocalRender, affected_span, backend_table, presets
from .edits import apply_edit
from .jobs import Job, JobRunner, readable_error
from .session import (
    AUDIO_SUFFIXES,
    VIDEO_SUFFIXES,
    Limits,
    ReferenceItem,
    RenderItem,
    Session,
    SessionStore,
    VideoItem,
    base_name,
    display_name,
    new_id,
    suffix_of,
    valid_id,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
PEAK_RATE = 125.0  # columns per second of the rendered-waveform overview drawn under the curve


class TimingRequest(BaseModel):
    backend: str = "motion"
    roi: list[int] | None = Field(default=None, min_length=4, max_length=4)  # x, y, w, h in video pixels
    # the sound's prompt, as generate gives it to stage 1: a walking prompt finds steps, a ringing
    # material's hits ring; with references (they make the sound) only its walking words count
    prompt: str | None = Field(default=None, max_length=500)
    references: bool = False


class RenderRequest(BaseModel):
    synth: str = "sampler"
    prompt: str | None = Field(default=None, max_length=500)
    references: list[str] = Field(default_factory=list, max_length=64)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    pan: bool = False
    partial: bool = True


class UploadTooLarge(FolaiError):
    pass


def _static_dir() -> Path:
    return Path(str(resources.files("folai.studio") / "static"))


def _probe(path: Path) -> Any:
    from ..media import probe_video

    return probe_video(path)


@contextmanager
def _as_named(names: dict[Path, str]):
    """FolaiErrors raised inside name the user's files, not their copies in the workspace (whose
    path gave away the server's folders and the session id)."""
    try:
        yield
    except FolaiError as e:
        text = str(e)
        for path, name in names.items():
            text = text.replace(str(path), f"'{name}'")
        if text == str(e):
            raise
        raise type(e)(text) from e


def _audio_seconds(path: Path) -> float:
    from ..media import read_audio
    from ..metrics.sync import SILENT_PEAK
    from ..synthesis.sampler import silent_recording

    a = read_audio(path, sr=16000, channels=None, drop_lfe=True)
    # per channel: a stereo take whose channels cancel in a mixdown is not silent (the sampler
    # then reads its loudest channel; found by a review)
    peak = float(np.max(np.abs(a - np.mean(a, axis=1, keepdims=True)))) if a.size else 0.0
    if peak < SILENT_PEAK:  # (as the sampler refuses it, at the upload: a silent file had been taken,
        # and refused only by the render it was chosen for; found by a review)
        raise silent_recording(f"the recording {path}", peak)
    return a.shape[-1] / 16000.0


def create_app(
    video: str | Path | None = None,
    *,
    workspace: str | Path | None = None,
    limits: Limits | None = None,
    backend_options: BackendOptions | None = None,
    allowed_hosts: tuple[str, ...] | None = None,
) -> FastAPI:
    """Build the studio app.

    video: a video opened in every new session (given on the command line; read only, never written).
    workspace: folder for the per-session workspaces (default: a new temporary folder, removed on
        shutdown). allowed_hosts: Host header values accepted (``None``: any); the server passes the
        loopback names when it listens on loopback, which blocks DNS-rebinding pages.
    """
    limits = limits or Limits()
    opts = backend_options or BackendOptions()
    start_video: tuple[Path, Any] | None = None
    if video is not None:
        from ..paths import check_input

        vp = check_input(video, "video")
        start_video = (vp.resolve(), _probe(vp))
        if start_video[1].duration > limits.video_seconds:  # (each new session had been refused instead)
            raise FolaiError(
                f"the video '{vp.name}' is {start_video[1].duration:.0f} s long; the studio accepts up to "
                f"{limits.video_seconds:.0f} s: cut it first (e.g. ffmpeg -ss START -t 1800 -i IN -c copy OUT)"
            )
    own_root = workspace is None
    root = Path(tempfile.mkdtemp(prefix="folai-studio-")) if own_root else Path(workspace)
    store = SessionStore(root, limits)
    jobs = JobRunner()
    cache = BackendCache(opts)

    def cleanup() -> None:
        """Stop the jobs and delete the workspaces (idempotent; also run if the server never started)."""
        jobs.shutdown()
        store.close_all()
        if own_root:
            shutil.rmtree(root, ignore_errors=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        cleanup()

    app = FastAPI(title="folai studio", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.store = store
    app.state.jobs = jobs
    app.state.root = root
    app.state.cleanup = cleanup

    # ------------------------------------------------------------------ errors as one sentence
    @app.exception_handler(FolaiError)
    async def _folai_error(request: Request, e: FolaiError) -> JSONResponse:
        status = 413 if isinstance(e, UploadTooLarge) else 400
        return JSONResponse({"error": str(e)}, status_code=status)

    # (Starlette's class: an unknown route or a wrong method answered {"detail": ...} otherwise)
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        parts = []
        for err in e.errors()[:3]:
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse({"error": "bad request: " + "; ".join(parts)}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, e: Exception) -> JSONResponse:
        log.exception("studio request failed")
        return JSONResponse({"error": readable_error(e)}, status_code=500)

    # ------------------------------------------------------------------ host / origin checks
    @app.middleware("http")
    async def _guard(request: Request, call_next):
        host = request.headers.get("host", "")
        hostname = urlsplit("//" + host).hostname or ""
        if allowed_hosts is not None and hostname not in allowed_hosts and host not in allowed_hosts:
            return JSONResponse({"error": f"host '{host}' is not served here"}, status_code=403)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            # the JSON routes' bodies are small (uploads stream to disk under their own limits): a
            # 200 MiB render request had been parsed whole, 1.2 GB of memory (found by a review)
            declared = request.headers.get("content-length", "")
            small = request.headers.get("content-type", "").startswith("application/json") or not _upload_route(request.url.path)
            if small and declared.isdigit() and int(declared) > limits.json_bytes:
                return JSONResponse({"error": f"the request is larger than the limit of {limits.json_bytes / 2**20:.0f} MiB"},
                                    status_code=413)
            if small and "transfer-encoding" in request.headers:
                # a body sent in chunks says no length to check: it was parsed whole, however large
                # (found by a review), also when a Content-Length came with it (the server reads the
                # chunks and ignores the length). Browsers send a length with a JSON body; uploads
                # stream to disk under their own limits
                return JSONResponse({"error": "send the request with a Content-Length (a chunked body is taken "
                                              "by the upload routes only)"}, status_code=411)
            origin = request.headers.get("origin")
            # ("null": a sandboxed frame or a file:// page, another site as far as we can tell; it
            # could create sessions until a user's live one was evicted)
            if origin and (origin == "null" or urlsplit(origin).netloc != host):
                return JSONResponse({"error": "requests from other sites are refused"}, status_code=403)
        return await call_next(request)

    # ------------------------------------------------------------------ helpers
    table_cache: dict[str, Any] = {}

    def backends_now() -> dict[str, list[dict[str, Any]]]:
        """The availability table, worked out once per server (importing a neural backend is slow)."""
        if "table" not in table_cache:
            table_cache["table"] = backend_table(opts)
        return table_cache["table"]

    def session(sid: str) -> Session:
        try:
            return store.get(sid)
        except KeyError:
            raise HTTPException(404, "unknown or expired session; reload the page") from None

    def envelope_json(s: Session) -> dict[str, Any] | None:
        env = s.envelope
        if env is None:
            return None
        return {
            "rate": env.rate,
            "start": env.start,
            "duration": env.duration,
            "channels": env.channels,
            "values": np.round(env.mono.astype(np.float64), 5).tolist(),
            "events": [[round(t, 4), round(v, 5)] for t, v in env.events()],
            "detected": [round(t, 4) for t in s.detected],
            "can_undo": s.history.can_undo,
            "can_redo": s.history.can_redo,
            "version": s.version,
            # whether the last render was made from this curve (by content: an Undo back to it too)
            "rendered": s.render is not None and _same_envelope(s.render.envelope, env),
        }

    def state_json(s: Session) -> dict[str, Any]:
        v = s.video
        r = s.render
        return {
            "session": s.id,
            "video": None
            if v is None
            else {
                "name": v.name,
                "duration": v.info.duration,
                "fps": v.info.fps,
                "width": v.info.width,
                "height": v.info.height,
                "url": f"/api/s/{s.id}/video",
            },
            "envelope": envelope_json(s),
            "timing_backend": s.timing_backend,
            "has_pan": s.pan is not None,
            "references": [{"id": x.id, "name": x.name, "seconds": round(x.seconds, 3)} for x in s.references.values()],
            "render": None
            if r is None
            else {
                "url": f"/api/s/{s.id}/audio.wav?v={r.version}",
                "version": r.version,
                "envelope_version": r.key[-1],
                "seconds": r.audio.shape[-1] / r.sample_rate,
                "peak_rate": PEAK_RATE,
                "peaks": _render_peaks(r),
            },
            "export": f"/api/s/{s.id}/export" if s.export_path is not None else None,
        }

    async def receive(request: Request, dest: Path, max_bytes: int, what: str) -> int:
        """Stream the raw request body to ``dest`` (in the workspace), stopping past ``max_bytes``."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise UploadTooLarge(f"the {what} is larger than the limit of {max_bytes / 2**20:.1f} MiB")
        n = 0
        try:
            with open(dest, "wb") as f:
                async for chunk in request.stream():
                    n += len(chunk)
                    if n > max_bytes:
                        raise UploadTooLarge(f"the {what} is larger than the limit of {max_bytes / 2**20:.1f} MiB")
                    f.write(chunk)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        if n == 0:
            dest.unlink(missing_ok=True)
            raise FolaiError(f"the {what} is empty")
        return n

    def open_video(s: Session, path: Path, full_name: str, info: Any, owned: bool) -> str | None:
        """Make ``path`` the session's video; a sentence on what became of the envelope, if anything."""
        name = display_name(full_name)
        if info.duration <= 0:
            raise FolaiError(f"the video '{name}' has no duration")
        if info.duration > limits.video_seconds:
            raise FolaiError(
                f"the video '{name}' is {info.duration:.0f} s long; the studio accepts up to {limits.video_seconds:.0f} s"
            )
        old = s.video
        s.video = VideoItem(path=path, full_name=full_name, info=info, owned=owned)
        if old is not None and old.owned and old.path != path:
            old.path.unlink(missing_ok=True)
        # the last video's render and export go with it (they were left in the workspace, each up to
        # the size of a video)
        for item in (s.render.path if s.render is not None else None, s.export_path):
            if item is not None:
                Path(item).unlink(missing_ok=True)
        s.detected, s.pan, s.timing_backend, s.render, s.export_path = [], None, None, None, None
        # the envelope in hand is kept when it fits the new video (a CSV loaded before the video,
        # as after a restart; the same clip opened again), and otherwise stays one Undo away: it
        # had been dropped with its history, without a word (found by a review)
        env = s.envelope
        if env is None:
            s.set_envelope(Envelope.zeros(info.duration), reset=True)
            return None
        # as a CSV loaded beside the video is taken (generate --envelope's rule): fitted to the
        # video when it lies in it (a late-starting CSV, as generate writes them, had been replaced)
        from ..pipeline import envelope_for_video

        try:
            fitted, note = envelope_for_video(env, float(info.duration))
        except FolaiError:
            s.set_envelope(Envelope.zeros(info.duration))
            return (f"the envelope in the editor covered {env.start:.2f} to {env.end:.2f} s, outside this video's "
                    f"0 to {info.duration:.2f} s: a silent one replaces it (Undo brings it back)")
        if note is None and fitted.start == env.start and fitted.n_frames == env.n_frames:
            return "the envelope in the editor fits this video: kept"
        s.set_envelope(fitted)
        return f"the envelope in the editor was fitted to this video: {note or 'cut or padded to it'} (Undo brings the old one back)"

    def new_session() -> Session:
        s = store.create()
        try:
            if start_video is not None:
                path = start_video[0]
                # the file named at startup may have been replaced (a new export of the cut) or
                # removed since: probed again (probe_video remembers an unchanged file by its size,
                # time and inode, so this is free; the startup probe had been kept: an 8 s state
                # for a 3 s file; found by a review)
                if not path.exists():
                    raise FolaiError(f"the video '{display_name(path.name)}' given when the studio started is no "
                                     "longer there; open a video in the page, or start the studio again")
                info = _probe(path)
                with s.lock:
                    open_video(s, path, path.name, info, owned=False)
        except BaseException:
            store.discard(s.id)  # (a half-made session had stayed, counting toward the limit)
            raise
        return s

    # ------------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(_static_dir() / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "version": __version__,
            "backends": backends_now(),
            "presets": presets(),
            "limits": {
                "video_mib": limits.video_bytes / 2**20,
                "audio_mib": limits.audio_bytes / 2**20,
                "csv_mib": limits.csv_bytes / 2**20,
                "video_seconds": limits.video_seconds,
                "references": limits.max_references,
            },
            "video_types": list(VIDEO_SUFFIXES),
            "audio_types": list(AUDIO_SUFFIXES),
            "startup_video": None if start_video is None else display_name(start_video[0].name),
        }

    @app.post("/api/session")
    def create_session() -> dict[str, Any]:
        s = new_session()
        with s.lock:
            return state_json(s)

    @app.get("/api/s/{sid}/state")
    def get_state(sid: str) -> dict[str, Any]:
        s = session(sid)
        with s.lock:
            return state_json(s)

    # ------------------------------------------------------------------ video
    @app.post("/api/s/{sid}/video")
    async def upload_video(sid: str, request: Request, name: str = "video.mp4") -> dict[str, Any]:
        s = session(sid)
        suffix = suffix_of(name, VIDEO_SUFFIXES, "the video file type")
        dest = s.file(f"video-{new_id()}{suffix}")
        await receive(request, dest, limits.video_bytes, "video")
        try:
            with _as_named({dest: display_name(name)}):
                info = _probe(dest)
            with s.lock:
                note = open_video(s, dest, base_name(name) or display_name(name), info, owned=True)
                out = state_json(s)
            if note:
                out["note"] = note
            return out
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    @app.get("/api/s/{sid}/video")
    def get_video(sid: str) -> FileResponse:
        s = session(sid)
        if s.video is None:
            raise HTTPException(404, "no video is open in this session")
        if not s.video.path.exists():  # (the file given on the command line was moved or deleted: a 500)
            raise HTTPException(404, f"the video '{s.video.name}' is no longer where it was opened from")
        return FileResponse(s.video.path, filename=s.video.name)

    # ------------------------------------------------------------------ timing
    @app.post("/api/s/{sid}/timing")
    def run_timing(sid: str, req: TimingRequest) -> dict[str, Any]:
        s = session(sid)
        if s.video is None:
            raise FolaiError("open a video first; the timing backends estimate the envelope from a video")
        table = {b["name"]: b for b in backends_now()["timing"]}
        if req.backend not in table:
            raise FolaiError(f"unknown timing backend '{req.backend}'; choose one of: {', '.join(table)}")
        if not table[req.backend]["available"]:
            raise FolaiError(f"timing backend '{req.backend}' is unavailable: {table[req.backend]['reason']}")
        video_path, duration, video_name = s.video.path, s.video.info.duration, s.video.name
        roi = None
        if req.roi is not None:
            x, y, w, h = req.roi
            W, H = s.video.info.width, s.video.info.height
            if x < 0 or y < 0 or x + w > W or y + h > H:
                raise FolaiError(f"the region must lie inside the {W}x{H} video, got x={x}, y={y}, w={w}, h={h}")
            from ..timing._flow import check_roi_shape

            check_roi_shape(w, h)  # the motion backend's own rule, checked before a job starts
            roi = (x, y, w, h)

        with s.lock:
            started = s.version

        def work(job: Job) -> dict[str, Any]:
            job.update(f"timing ({req.backend})")
            from ..synthesis.presets import timing_prompt

            try:
                with _as_named({video_path: video_name}):  # (never the workspace's path)
                    result = cache.timing(req.backend).estimate(video_path, roi=roi, progress=True,
                                                                prompt=timing_prompt(req.prompt, req.references))
            except FolaiError:
                with s.lock:
                    if s.video is None or s.video.path != video_path:  # (its file went with it: "not found")
                        raise FolaiError("the video changed while the timing ran; run it again") from None
                raise
            env = result.envelope
            if env.start == 0:  # as the pipeline does: exactly the video's length
                env = env.fit(duration)
            events = []
            for e in (result.info or {}).get("events", []) or []:
                t = e[0] if isinstance(e, (tuple, list)) else e
                events.append(float(t))
            with s.lock:
                if s.video is None or s.video.path != video_path:
                    raise FolaiError("the video changed while the timing ran; run it again")
                edited = s.version != started  # edits made while it ran: replaced, said, undoable
                s.set_envelope(env)
                s.detected = events
                s.pan = None if result.pan is None else np.asarray(result.pan, dtype=np.float32)
                s.pan_times = None if s.pan is None else env.start + np.arange(s.pan.size) / env.rate
                s.pan_version += 1
                s.timing_backend = req.backend
            return {"events": len(events), "duration": duration, "replaced_edits": edited}

        return jobs.submit(s.id, "timing", work).to_json()

    # ------------------------------------------------------------------ envelope
    @app.get("/api/s/{sid}/envelope")
    def get_envelope(sid: str) -> dict[str, Any]:
        s = session(sid)
        with s.lock:
            if s.envelope is None:
                raise HTTPException(404, "there is no envelope yet; open a video or load an envelope CSV")
            return envelope_json(s)

    @app.post("/api/s/{sid}/edit")
    def edit(sid: str, body: dict[str, Any]) -> dict[str, Any]:
        s = session(sid)
        with s.lock:
            if s.envelope is None:
                raise FolaiError("there is no envelope to edit; open a video or load an envelope CSV first")
            s.set_envelope(apply_edit(s.envelope, body))
            return envelope_json(s)

    @app.post("/api/s/{sid}/undo")
    def undo(sid: str) -> dict[str, Any]:
        s = session(sid)
        with s.lock:
            s.history.undo()
            s.version += 1
            return envelope_json(s)

    @app.post("/api/s/{sid}/redo")
    def redo(sid: str) -> dict[str, Any]:
        s = session(sid)
        with s.lock:
            s.history.redo()
            s.version += 1
            return envelope_json(s)

    @app.post("/api/s/{sid}/envelope.csv")
    async def load_csv(sid: str, request: Request, name: str = "envelope.csv") -> dict[str, Any]:
        s = session(sid)
        suffix_of(name, (".csv",), "the envelope file type")
        dest = s.file(f"upload-{new_id()}.csv")
        await receive(request, dest, limits.csv_bytes, "envelope file")
        try:
            try:
                text = dest.read_text(encoding="utf-8")  # (whatever the locale: a spreadsheet writes UTF-8)
            except UnicodeDecodeError:
                raise FolaiError(f"{display_name(name)}: not a text CSV file (expected header 'time_s,rms')") from None
            env = Envelope.from_csv_string(text, name=display_name(name))
        finally:
            dest.unlink(missing_ok=True)
        if env.end > limits.video_seconds:  # (without a video, its end is the render's length)
            raise FolaiError(
                f"{display_name(name)} ends at {env.end:.0f} s; the studio renders up to {limits.video_seconds:.0f} s"
            )
        with s.lock:
            note = None
            if s.video is not None:
                # as `folai generate --envelope` takes it: fitted to the video, refused when it lies
                # outside it (a 2 s CSV on an 8 s video, one from 100 s, had been taken as they were)
                from ..pipeline import envelope_for_video

                try:
                    env, note = envelope_for_video(env, float(s.video.info.duration))
                except FolaiError as e:
                    raise FolaiError(f"{display_name(name)}: {e} of {s.video.name}") from None
                if note:
                    note = f"{display_name(name)}: {note}"
            s.set_envelope(env, reset=s.envelope is None)
            out = envelope_json(s)
            if note:
                out["note"] = note
            return out

    @app.get("/api/s/{sid}/envelope.csv")
    def save_csv(sid: str) -> Response:
        s = session(sid)
        with s.lock:
            if s.envelope is None:
                raise HTTPException(404, "there is no envelope yet")
            text = s.envelope.to_csv_string()
            stem = _download_stem(s)
        return PlainTextResponse(
            text,
            media_type="text/csv",
            headers={"Content-Disposition": _attachment(stem, ".envelope.csv")},
        )

    # ------------------------------------------------------------------ references
    @app.post("/api/s/{sid}/references")
    async def add_reference(sid: str, request: Request, name: str = "reference.wav") -> dict[str, Any]:
        s = session(sid)
        suffix = suffix_of(name, AUDIO_SUFFIXES, "the reference recording type")
        if len(s.references) >= limits.max_references:
            raise FolaiError(f"at most {limits.max_references} reference recordings per session; remove one first")
        rid = new_id()
        dest = s.file(f"ref-{rid}{suffix}")
        await receive(request, dest, limits.audio_bytes, "reference recording")
        try:
            with _as_named({dest: display_name(name)}):
                seconds = _audio_seconds(dest)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        with s.lock:
            s.references[rid] = ReferenceItem(rid, dest, display_name(name), seconds)
            return state_json(s)

    @app.delete("/api/s/{sid}/references/{rid}")
    def delete_reference(sid: str, rid: str) -> dict[str, Any]:
        s = session(sid)
        with s.lock:
            item = s.references.pop(rid, None) if valid_id(rid) else None
            if item is None:
                raise HTTPException(404, "no such reference recording")
            item.path.unlink(missing_ok=True)
            return state_json(s)

    # ------------------------------------------------------------------ render
    @app.post("/api/s/{sid}/render")
    def render(sid: str, req: RenderRequest) -> dict[str, Any]:
        s = session(sid)
        table = {b["name"]: b for b in backends_now()["synthesis"]}
        if req.synth not in table:
            raise FolaiError(f"unknown synthesis backend '{req.synth}'; choose one of: {', '.join(table)}")
        if not table[req.synth]["available"]:
            raise FolaiError(f"synthesis backend '{req.synth}' is unavailable: {table[req.synth]['reason']}")
        with s.lock:
            env = s.envelope
            if env is None:
                raise FolaiError("there is no envelope to render; open a video or load an envelope CSV first")
            refs = []
            ref_names: dict[Path, str] = {}
            for rid in req.references:
                if rid not in s.references:
                    raise FolaiError("a chosen reference recording is no longer in this session; choose again")
                refs.append(s.references[rid].path)
                ref_names[s.references[rid].path] = s.references[rid].name
            duration = float(s.duration)
            video_path = s.video.path if s.video else None
            pan = s.pan if req.pan else None
            if pan is not None and s.pan_times is not None:
                # the pan holds one value per frame of the timing run's envelope; the envelope
                # rendered now may be another (a CSV loaded at another rate): by time, not by index
                pan = np.interp(env.times, s.pan_times, pan).astype(np.float32)
            pan_version = s.pan_version if req.pan else None
            version = s.version
        if req.pan and pan is None:
            raise FolaiError("panning needs the motion position from a timing run; run the timing first")
        prompt = (req.prompt or "").strip() or None
        said = prompt
        if prompt and req.synth == "sampler" and not refs:
            from ..synthesis.presets import match_preset

            # the sound the prompt names ("Footsteps on gravel" re-rendered all of a render); a
            # prompt no preset matches is said now, not by the job it would have queued
            said = "preset:" + match_preset(prompt)
        key = (req.synth, said, tuple(str(p) for p in refs), req.seed, pan_version, duration, str(video_path))

        def work(job: Job) -> dict[str, Any]:
            t_start = time.perf_counter()
            job.update(f"rendering ({req.synth})")
            pipe = cache.synth(req.synth)
            with _as_named(ref_names):
                pipe.check(prompt=prompt, references=refs)  # fail fast on an unknown prompt, a silent recording...
            synth = pipe.synth
            sr = int(getattr(synth, "sample_rate", SAMPLE_RATE))
            kwargs: dict[str, Any] = dict(
                duration=duration, prompt=prompt, references=refs, video=video_path, pan=pan, seed=req.seed, progress=True
            )
            with s.lock:
                last = s.render
            mode, span = "full", [0.0, duration]
            audio, patch = None, None
            if req.partial and last is not None and last.key[:-1] == key and hasattr(synth, "render_span"):
                span_kw = {k: v for k, v in kwargs.items() if k not in ("duration", "progress")}
                try:
                    changed = affected_span(synth, last.envelope, env, duration, **span_kw)
                except NoLocalRender as e:
                    log.info("full render: %s", e)
                    changed = (0.0, duration)
                if changed is None:
                    mode, span, audio = "unchanged", None, last.audio
                elif changed[1] - changed[0] < 0.9 * duration:
                    t0, t1 = changed
                    job.update(f"re-rendering {t0:.2f}-{t1:.2f} s ({req.synth})")
                    seg = np.asarray(synth.render_span(env, t0, t1, **kwargs), dtype=np.float32)
                    i0, i1 = int(round(t0 * sr)), int(round(t1 * sr))
                    if seg.shape != (last.audio.shape[0], i1 - i0):
                        raise FolaiError(
                            f"the backend returned {seg.shape} samples for {t0:.3f}-{t1:.3f} s, expected {(last.audio.shape[0], i1 - i0)}"
                        )
                    audio = last.audio.copy()
                    audio[:, i0:i1] = seg
                    mode, span, patch = "partial", [t0, t1], (i0, seg)
            if audio is None:
                audio = np.asarray(pipe.render(env, **kwargs), dtype=np.float32)
            from ..media import write_audio

            with s.lock:
                s.render_count += 1
                n = s.render_count
            path = s.file(f"render-{n}.wav")
            if mode == "partial" and last.path.exists():
                _patched_wav(last.path, path, *patch)
            elif mode != "unchanged":
                write_audio(path, audio, sr, subtype="PCM_16")
            else:
                path = last.path
            with s.lock:
                if (s.video.path if s.video else None) != video_path:
                    if mode != "unchanged":
                        path.unlink(missing_ok=True)
                    raise FolaiError("another video was opened while this one rendered; render again")
                old = s.render
                s.render = RenderItem(audio, sr, env, key + (version,), path, n)
                if mode != "unchanged" and s.export_path is not None:  # an export of the last render
                    s.export_path.unlink(missing_ok=True)  # is out of date: gone (an unchanged one is not)
                    s.export_path = None
                if old is not None and old.path != path:
                    old.path.unlink(missing_ok=True)
            return {
                "mode": mode,
                "span": span,
                "seconds": round(time.perf_counter() - t_start, 3),
                "url": f"/api/s/{s.id}/audio.wav?v={n}",
            }

        return jobs.submit(s.id, "render", work).to_json()

    @app.get("/api/s/{sid}/audio.wav")
    def get_audio(sid: str) -> FileResponse:
        s = session(sid)
        with s.lock:
            if s.render is None:
                raise HTTPException(404, "nothing has been rendered yet")
            return _download(s, s.render.path, ".foley.wav", media_type="audio/wav")

    # ------------------------------------------------------------------ export
    @app.post("/api/s/{sid}/export")
    def export(sid: str) -> dict[str, Any]:
        s = session(sid)
        with s.lock:
            if s.video is None:
                raise FolaiError("open a video first; without a video, download the WAV instead")
            if s.render is None:
                raise FolaiError("render the audio first; export puts the last render onto the video")
            video_path = s.video.path
        from ..pipeline import default_output

        suffix = default_output(video_path).suffix.lower()  # the container `folai generate` would write

        def work(job: Job) -> dict[str, Any]:
            from ..media import mux_audio

            job.update("muxing the audio into the video")
            with s.lock:  # the render current now (a render queued before this export has finished):
                # read when the request came, an export behind a render muxed the render before it
                if s.render is None:
                    raise FolaiError("render the audio first; export puts the last render onto the video")
                _check_current(s)  # (when the job runs: a render queued before it may make it current)
                audio, sr, rendered = s.render.audio, s.render.sample_rate, s.render
            out = s.file(f"export-{new_id()}{suffix}")
            mux_audio(video_path, audio, out, sr=sr)
            with s.lock:
                if (s.video.path if s.video else None) != video_path:
                    out.unlink(missing_ok=True)
                    raise FolaiError("another video was opened while this one was exported; export again")
                if s.render is not rendered:  # rendered again meanwhile: this export is out of date
                    out.unlink(missing_ok=True)
                    raise FolaiError("the audio was rendered again while it was exported; export again")
                old = s.export_path
                s.export_path = out
                if old is not None:
                    old.unlink(missing_ok=True)
            return {"url": f"/api/s/{s.id}/export"}

        return jobs.submit(s.id, "export", work).to_json()

    @app.get("/api/s/{sid}/export")
    def get_export(sid: str) -> FileResponse:
        s = session(sid)
        with s.lock:
            if s.export_path is None or s.video is None:
                raise HTTPException(404, "nothing has been exported yet")
            return _download(s, s.export_path, f".foley{s.export_path.suffix}")

    # the downloads answer HEAD too (download managers ask first; it had been 405), as routes of their
    # own out of the API's schema (one route for both had given GET and HEAD one operation id)
    for path, fn in (("/api/s/{sid}/video", get_video), ("/api/s/{sid}/envelope.csv", save_csv),
                     ("/api/s/{sid}/audio.wav", get_audio), ("/api/s/{sid}/export", get_export)):
        app.add_api_route(path, fn, methods=["HEAD"], include_in_schema=False)

    # ------------------------------------------------------------------ jobs
    @app.get("/api/s/{sid}/jobs/{jid}")
    def get_job(sid: str, jid: str) -> dict[str, Any]:
        s = session(sid)
        try:
            return jobs.get(s.id, jid).to_json() if valid_id(jid) else _no_job()
        except KeyError:
            return _no_job()

    return app


def _patched_wav(src: Path, dst: Path, i0: int, seg: np.ndarray) -> None:
    """``dst``: the 16-bit WAV ``src`` with the samples from ``i0`` on replaced by ``seg`` (C, n),
    as :func:`folai.media.write_audio` writes them. Writing the whole track again after a partial
    re-render had taken ~4 s of a 6.7-8 s re-render at 30 minutes."""
    import shutil

    import soundfile as sf

    from ..paths import atomic_output

    with atomic_output(dst) as tmp:
        shutil.copyfile(src, tmp)
        with sf.SoundFile(str(tmp), "r+") as f:
            f.seek(i0)
            f.write(np.clip(np.asarray(seg, dtype=np.float32), -1.0, 1.0).T)


def _render_peaks(r) -> list:
    """A render's waveform overview, made once (it had been made again for every state request:
    0.6-0.9 s and 3 MB at 30 minutes)."""
    if r.peaks is None:
        r.peaks = np.round(_peaks(r.audio, r.sample_rate), 4).tolist()
    return r.peaks


def _peaks(audio: np.ndarray, sr: int, rate: float = PEAK_RATE) -> np.ndarray:
    """(C, N) audio -> (ceil(N * rate / sr),) max |sample| per column (the overview drawn in the page)."""
    a = np.abs(audio).max(axis=0) if audio.ndim == 2 else np.abs(audio)
    if a.size == 0:
        return np.zeros(0, np.float32)
    hop = sr / rate
    starts = np.unique(np.round(np.arange(int(np.ceil(a.size / hop))) * hop).astype(np.int64))
    return np.maximum.reduceat(a, starts[starts < a.size]).astype(np.float32)


def _upload_route(path: str) -> bool:
    """Whether ``path`` is one of the routes that take a file's bytes as the body."""
    return path.startswith("/api/s/") and path.rsplit("/", 1)[-1] in ("video", "envelope.csv", "references")


def _same_envelope(a: Envelope | None, b: Envelope | None) -> bool:
    """Whether two envelopes are the same curve (rate, start and values)."""
    if a is None or b is None:
        return a is b
    return (a is b) or (a.rate == b.rate and a.start == b.start and a.values.shape == b.values.shape
                        and bool(np.array_equal(a.values, b.values)))


def _check_current(s: Session) -> None:
    """Raise unless the session's last render was made from its envelope as it is now (under the lock)."""
    if not _same_envelope(s.render.envelope, s.envelope):
        # (an export after an edit had muxed the render before it and said it was ready; found by a review)
        raise FolaiError("the envelope changed since the last render; render again, then export "
                         "(export puts the last render onto the video)")


def _download_stem(s: Session) -> str:
    """The stem downloads are named from: the video's whole name (not the page's shortened one)."""
    return Path(s.video.full_name).stem if s.video else "folai"


def _download(s: Session, path: Path, ending: str, media_type: str | None = None) -> FileResponse:
    """A response sending ``path`` (called under the session's lock) as the session's
    :func:`_download_stem` + ``ending``, from a hard link
    of its own in the workspace: a render or export that replaces the file meanwhile (and unlinks
    it) does not cut the download off (a 500 'does not exist' had raced a finishing job; found by a
    review). The link goes when the response is sent."""
    link = s.file(f"send-{new_id()}{path.suffix}")
    try:
        os.link(path, link)
    except FileNotFoundError:
        raise HTTPException(404, "that file is no longer there; render or export again") from None
    except OSError:  # (a file system without hard links: the file itself)
        link = None
    headers = {"content-disposition": _attachment(_download_stem(s), ending)}
    if link is None:
        return FileResponse(path, media_type=media_type, headers=headers)
    return _LinkResponse(link, media_type=media_type, headers=headers)


class _LinkResponse(FileResponse):
    """A FileResponse of a download's own hard link, removed however the response ends (a
    background task was skipped by Starlette's answers to a Range it cannot serve, 416 or 400, and
    by a dropped connection: such links had stayed in the workspace; found by a review)."""

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            Path(self.path).unlink(missing_ok=True)


def _no_job() -> dict[str, Any]:
    raise HTTPException(404, "no such job")


def _attachment(stem: str, ending: str) -> str:
    """A Content-Disposition header for the file ``stem + ending``: an ASCII stand-in, and the name
    itself in RFC 5987 form when it is not plain ASCII (``撮影 Straße.wav`` had come down as
    ``___Stra_e.wav``). A stem that would make the name over 200 characters is shortened (a whole
    300-character upload name passed most file systems' 255)."""
    from urllib.parse import quote

    filename = stem[: max(0, 200 - len(ending))] + ending
    plain = _ascii(filename)
    if plain == filename:
        return f'attachment; filename="{plain}"'
    return f"attachment; filename=\"{plain}\"; filename*=utf-8''{quote(filename, safe='')}"


def _ascii(stem: str) -> str:
    out = "".join(ch if (ch.isascii() and (ch.isalnum() or ch in "-_.")) else "_" for ch in stem)
    return out.strip(".") or "folai"
