// folai studio page: video + envelope timeline editor. Vanilla JS, no build step.
// All edits are sent to the server, which applies them with folai.envelope.Envelope's methods and
// returns the new curve, so the page and the CLI share one implementation.
"use strict";

const $ = (id) => document.getElementById(id);
const S = {
  sid: null, info: null, state: null, env: null,
  view: [0, 1], tool: "select", sel: null, busy: false,
  drag: null, hoverT: null,
};
const PAD_TOP = 18, PAD_BOTTOM = 20;   // px: detected-event ticks above, time ruler below
const HANDLE_R = 6;

// ------------------------------------------------------------------ server calls
async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const url = path.startsWith("/api/") ? path : `/api/s/${S.sid}${path}`;
  let res;
  try { res = await fetch(url, opts); }
  catch (e) { throw new Error("the studio server cannot be reached; is it still running?"); }
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) throw new Error((data && data.error) || `request failed (${res.status})`);
  return data;
}

function upload(path, file, what) {   // XHR for upload progress; raw body, name in the query
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/s/${S.sid}${path}?name=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress(`uploading ${what}`, e.loaded / e.total); };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new Error((data && data.error) || `upload failed (${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("the upload failed: the studio server cannot be reached"));
    xhr.send(file);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function runJob(job) {   // poll a background job until it ends; show its progress
  while (job.state === "queued" || job.state === "running") {
    progress(job.stage, job.progress);
    await sleep(200);
    job = await api("GET", `/jobs/${job.id}`);
  }
  if (job.state === "error") throw new Error(job.error);
  progress(`${job.kind} done in ${job.elapsed.toFixed(2)} s`, 1);
  return job.result;
}

// ------------------------------------------------------------------ messages / progress
function progress(text, frac) {
  $("progress-text").textContent = text;
  const bar = $("progress-bar");
  if (frac === null || frac === undefined) { bar.classList.add("indeterminate"); bar.style.width = ""; }
  else { bar.classList.remove("indeterminate"); bar.style.width = `${Math.round(frac * 100)}%`; }
}
function message(text, kind) {
  const m = $("message");
  m.textContent = text || "";
  m.className = kind === "info" ? "info" : "";
}

async function task(label, fn) {   // one user action: busy state, errors shown in the page
  if (S.busy) { message("wait for the current job to finish"); return; }
  S.busy = true; document.body.dataset.busy = "1"; updateButtons();
  message("");
  try { await fn(); }
  catch (e) { message(`${label}: ${e.message}`); progress("failed", 0); }
  finally { S.busy = false; document.body.dataset.busy = "0"; updateButtons(); }
}

// Edits are instant server calls: they may run while a job (render, timing) works, one after another
// in the order made, so a slow answer never overwrites a newer curve.
let editChain = Promise.resolve();
function quick(label, fn) {
  editChain = editChain.then(async () => {
    try { await fn(); if (!S.busy) message(""); }
    catch (e) { message(`${label}: ${e.message}`); }
    finally { updateButtons(); }
  });
  return editChain;
}

// ------------------------------------------------------------------ state
function setState(st) {
  S.state = st;
  // (a state fetched after a job may come back after a newer edit's answer: never an older curve)
  if (st.envelope && !(S.env && S.env.session === st.session && st.envelope.version < S.env.version)) {
    setEnvelope(st.envelope, false);
  } else if (st.envelope && S.env) {
    st.envelope = S.env;
  }
  const v = st.video, video = $("video");
  if (v) {
    if (video.dataset.src !== v.url) { video.src = v.url; video.dataset.src = v.url; }
    $("video-name").textContent = `${v.name} · ${v.duration.toFixed(2)} s · ${v.width}×${v.height} · ${v.fps.toFixed(2)} fps`;
    $("no-video").hidden = true;
  } else {
    video.removeAttribute("src"); delete video.dataset.src; video.load();
    $("video-name").textContent = "no video open";
    $("no-video").hidden = false;
  }
  const audio = $("audio");
  if (st.render) {
    if (audio.dataset.src !== st.render.url) { audio.src = st.render.url; audio.dataset.src = st.render.url; }
    $("link-wav").href = st.render.url;
  } else {
    audio.removeAttribute("src"); delete audio.dataset.src;
    $("link-wav").removeAttribute("href");
  }
  const ex = $("link-export");
  if (st.export) { ex.href = st.export; ex.hidden = false; } else { ex.hidden = true; ex.removeAttribute("href"); }
  renderRefs();
  updateButtons();
  draw();
}

function setEnvelope(env, keepView) {
  const first = !S.env || Math.abs(S.env.duration - env.duration) > 1e-9 || S.env.start !== env.start;
  if (!env.session) env.session = S.sid;
  S.env = env;
  document.body.dataset.envVersion = String(env.version);
  if (S.state) S.state.envelope = env;
  if (first || !keepView) {
    if (first) S.view = [env.start, env.start + env.duration];
  }
  const csv = `/api/s/${S.sid}/envelope.csv?v=${env.version}`;
  $("link-csv").href = csv; $("link-csv2").href = csv;
  updateButtons();
  draw();
}

function duration() { return S.env ? S.env.duration : (S.state && S.state.video ? S.state.video.duration : 1); }

function renderRefs() {
  const ul = $("ref-list");
  ul.innerHTML = "";
  for (const r of (S.state ? S.state.references : [])) {
    const li = document.createElement("li");
    const cb = document.createElement("input");
    cb.type = "checkbox"; cb.checked = true; cb.dataset.ref = r.id;
    const span = document.createElement("span");
    span.textContent = `${r.name} (${r.seconds.toFixed(1)} s)`;
    const del = document.createElement("button");
    del.textContent = "×"; del.title = "remove this recording";
    del.onclick = () => task("remove recording", async () => setState(await api("DELETE", `/references/${r.id}`)));
    li.append(cb, span, del);
    ul.append(li);
  }
}

function updateButtons() {
  const env = S.env, st = S.state, b = S.busy;
  const has = (id, on) => { $(id).disabled = !on; };
  has("btn-undo", env && env.can_undo);
  has("btn-redo", env && env.can_redo);
  for (const id of ["btn-delete", "btn-scale", "btn-gate"]) has(id, env && S.sel);
  has("btn-timing", !b && st && st.video && optionAvailable("sel-timing"));
  has("btn-render", !b && env && optionAvailable("sel-synth"));
  // export puts the last render onto the video: only while it is the envelope's (an edit since
  // had exported the render before it)
  has("btn-export", !b && st && st.video && st.render && env && env.rendered);
  for (const id of ["link-wav"]) $(id).classList.toggle("disabled", !(st && st.render));
  for (const id of ["link-csv", "link-csv2"]) $(id).classList.toggle("disabled", !env);
  $("sel-label").textContent = S.sel ? `${S.sel[0].toFixed(3)}–${S.sel[1].toFixed(3)} s` : "no selection";
  const note = $("render-note");
  if (st && st.render && env) {
    note.textContent = env.rendered
      ? "the render matches the envelope"
      : "the envelope changed since the last render; render again to hear it (and to export it)";
  } else note.textContent = "";
}

function optionAvailable(selId) {
  const o = $(selId).selectedOptions[0];
  return !!o && !o.disabled;
}

function fillBackends(info) {
  for (const [selId, list, noteId] of [["sel-timing", info.backends.timing, "timing-note"], ["sel-synth", info.backends.synthesis, "synth-note"]]) {
    const sel = $(selId);
    sel.innerHTML = "";
    for (const b of list) {
      const o = document.createElement("option");
      o.value = b.name; o.disabled = !b.available;
      o.textContent = b.available ? b.name : `${b.name} (unavailable)`;
      o.title = b.available ? "" : b.reason;
      sel.append(o);
    }
    const firstOk = list.find((b) => b.available);
    if (firstOk) sel.value = firstOk.name;
    const notes = list.filter((b) => !b.available).map((b) => `${b.name} unavailable: ${b.reason}`);
    $(noteId).textContent = notes.join(" · ");
  }
  const ps = $("sel-preset");
  for (const p of info.presets) { const o = document.createElement("option"); o.value = p; o.textContent = p; ps.append(o); }
}

// ------------------------------------------------------------------ timeline geometry
const canvas = $("timeline");
const ctx = canvas.getContext("2d");
function plotH() { return canvas.clientHeight - PAD_TOP - PAD_BOTTOM; }
function tToX(t) { const [a, b] = S.view; return (t - a) / (b - a) * canvas.clientWidth; }
function xToT(x) { const [a, b] = S.view; return a + x / canvas.clientWidth * (b - a); }
// the level axis: 0 at the bottom, yMax() at the top ("auto": the smallest step above the curve)
const Y_STEPS = [0.05, 0.1, 0.25, 0.5, 1];
let yMaxCache = { env: null, sel: null, value: 1 };
function yMax() {   // cached per envelope and axis choice (it is asked once per drawn vertex)
  const v = $("sel-yscale").value;
  if (yMaxCache.env === S.env && yMaxCache.sel === v) return yMaxCache.value;
  let value;
  if (v !== "auto") value = parseFloat(v);
  else if (!S.env) value = 1;
  else {
    let m = 0; for (const x of S.env.values) if (x > m) m = x;
    value = m === 0 ? 0.25 : (Y_STEPS.find((s) => s >= 1.15 * m) || 1);   // blank: room for ordinary impacts
  }
  yMaxCache = { env: S.env, sel: v, value };
  return value;
}
function levelToY(l) { return PAD_TOP + (1 - l / yMax()) * plotH(); }
function yToLevel(y) { return Math.min(yMax(), Math.max(0, (1 - (y - PAD_TOP) / plotH()) * yMax())); }
function ampToY(a) { return PAD_TOP + (1 - a) * plotH(); }   // the render's waveform: full scale = top
function clampT(t) { const e = S.env; return e ? Math.min(e.start + e.duration, Math.max(e.start, t)) : t; }
function eventPos(x, y) {   // canvas-relative mouse position
  const r = canvas.getBoundingClientRect();
  return [x - r.left, y - r.top];
}

function niceStep(span, px) {
  const target = span / Math.max(1, px / 80);
  const p = Math.pow(10, Math.floor(Math.log10(target)));
  for (const m of [1, 2, 5, 10]) if (m * p >= target) return m * p;
  return 10 * p;
}

function currentTime() {
  const v = $("video"), a = $("audio");
  if (S.state && S.state.video) return v.currentTime || 0;
  return a.currentTime || 0;
}

function draw() {
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth, H = canvas.clientHeight;
  if (canvas.width !== Math.round(W * dpr) || canvas.height !== Math.round(H * dpr)) {
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  const [a, b] = S.view;
  // grid: levels and seconds
  ctx.strokeStyle = "#2b303a"; ctx.lineWidth = 1; ctx.fillStyle = "#7d8593"; ctx.font = "11px system-ui";
  const ym = yMax();
  const p10 = Math.pow(10, Math.floor(Math.log10(ym / 4)));
  const lstep = [1, 2, 2.5, 5, 10].map((m) => m * p10).find((v) => v >= ym / 5);
  const dec = Math.max(0, -Math.floor(Math.log10(lstep)) + (lstep / p10 === 2.5 ? 1 : 0));
  for (let l = lstep; l <= ym + 1e-9; l += lstep) {
    const y = Math.round(levelToY(l)) + 0.5;
    ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(W, y); ctx.stroke();
    ctx.fillText(l.toFixed(dec), 3, y + 11);
  }
  const step = niceStep(b - a, W);
  for (let t = Math.ceil(a / step) * step; t <= b + 1e-9; t += step) {
    const x = Math.round(tToX(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, PAD_TOP); ctx.lineTo(x, H - PAD_BOTTOM + 4); ctx.stroke();
    const label = step < 0.1 ? t.toFixed(2) : step < 1 ? t.toFixed(1) : t.toFixed(0);
    ctx.fillText(`${label}s`, x + 2, H - 5);
  }
  // selection
  if (S.sel) {
    const x0 = tToX(S.sel[0]), x1 = tToX(S.sel[1]);
    ctx.fillStyle = "rgba(90,150,255,0.22)"; ctx.fillRect(x0, PAD_TOP, x1 - x0, plotH());
    ctx.strokeStyle = "rgba(120,170,255,0.8)"; ctx.strokeRect(x0 + 0.5, PAD_TOP + 0.5, x1 - x0, plotH() - 1);
  }
  const env = S.env;
  const r = S.state && S.state.render;
  if (r && r.peaks && r.peaks.length) {   // the last render's waveform : peak per column, up from 0
    const pk = r.peaks, pr = r.peak_rate, mid = levelToY(0);
    ctx.fillStyle = "rgba(200,205,215,0.16)";
    const perPx = (b - a) * pr / Math.max(1, W);
    for (let px = 0; px < W; px++) {
      const j0 = Math.max(0, Math.floor((a + px / W * (b - a)) * pr)), j1 = Math.min(pk.length, j0 + Math.max(1, Math.ceil(perPx)));
      let m = 0; for (let j = j0; j < j1; j++) if (pk[j] > m) m = pk[j];
      if (m > 0) { const y = ampToY(Math.min(1, m)); ctx.fillRect(px, y, 1, mid - y); }
    }
  }
  if (env) {   // detected events: ticks in the top band
    ctx.strokeStyle = "#e8598f"; ctx.lineWidth = 2;
    for (const t of env.detected) {
      if (t < a || t > b) continue;
      const x = tToX(t);
      ctx.beginPath(); ctx.moveTo(x, 1); ctx.lineTo(x, PAD_TOP - 6); ctx.stroke();
    }
  }
  ctx.save();
  ctx.beginPath(); ctx.rect(0, PAD_TOP - HANDLE_R, W, plotH() + HANDLE_R); ctx.clip();   // a manual scale may cut the curve
  if (env) {
    // curve (filled); one vertex per pixel column at most, using the column's maximum
    const vals = env.values, n = vals.length, rate = env.rate;
    const i0 = Math.max(0, Math.floor((a - env.start) * rate)), i1 = Math.min(n, Math.ceil((b - env.start) * rate) + 1);
    const perPx = (i1 - i0) / Math.max(1, W);
    ctx.beginPath(); ctx.moveTo(tToX(env.start + i0 / rate), levelToY(0));
    if (perPx <= 1) {
      for (let i = i0; i < i1; i++) ctx.lineTo(tToX(env.start + i / rate), levelToY(vals[i]));
    } else {
      for (let px = 0; px < W; px++) {
        const j0 = i0 + Math.floor(px * perPx), j1 = Math.min(i1, i0 + Math.floor((px + 1) * perPx) + 1);
        let m = 0; for (let j = j0; j < j1; j++) if (vals[j] > m) m = vals[j];
        ctx.lineTo(px, levelToY(m));
      }
    }
    ctx.lineTo(tToX(env.start + (i1 - 1) / rate), levelToY(0)); ctx.closePath();
    ctx.fillStyle = "rgba(62,193,168,0.25)"; ctx.fill();
    ctx.strokeStyle = "#3ec1a8"; ctx.lineWidth = 1.5; ctx.stroke();
    // editable events: handles at the peaks
    for (const [t, l] of env.events) {
      if (t < a || t > b) continue;
      drawHandle(tToX(t), levelToY(l), false);
    }
  }
  ctx.restore();
  // drag preview
  const d = S.drag;
  if (d && d.kind === "event") {
    ctx.setLineDash([4, 3]); ctx.strokeStyle = "#ffa94d"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(tToX(d.t), levelToY(d.l)); ctx.lineTo(tToX(d.nt), levelToY(d.nl)); ctx.stroke();
    ctx.setLineDash([]);
    drawHandle(tToX(d.nt), levelToY(d.nl), true);
  } else if (d && d.kind === "draw" && d.points.length > 1) {
    ctx.strokeStyle = "#ffd43b"; ctx.lineWidth = 2; ctx.beginPath();
    d.points.forEach(([t, l], i) => (i ? ctx.lineTo(tToX(t), levelToY(l)) : ctx.moveTo(tToX(t), levelToY(l))));
    ctx.stroke();
  }
  // playhead
  const t = currentTime();
  if (t >= a && t <= b) {
    const x = Math.round(tToX(t)) + 0.5;
    ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, H); ctx.stroke();
  }
  if (!env) { ctx.fillStyle = "#7d8593"; ctx.font = "13px system-ui"; ctx.fillText("the envelope appears here once a video or an envelope CSV is open", 12, H / 2); }
  $("time").textContent = `${t.toFixed(3)} / ${duration().toFixed(3)} s`;
}

function drawHandle(x, y, active) {
  ctx.beginPath(); ctx.arc(x, y, HANDLE_R, 0, Math.PI * 2);
  ctx.fillStyle = active ? "#ffd8a8" : "#ffa94d"; ctx.fill();
  ctx.strokeStyle = "#1d2027"; ctx.lineWidth = 1.5; ctx.stroke();
}

function hitEvent(x, y) {
  if (!S.env) return null;
  let best = null, bestD = (HANDLE_R + 4) ** 2;
  for (const [t, l] of S.env.events) {
    const d = (tToX(t) - x) ** 2 + (levelToY(l) - y) ** 2;
    if (d <= bestD) { best = [t, l]; bestD = d; }
  }
  return best;
}

// ------------------------------------------------------------------ timeline interaction
function edit(body) {
  return quick("edit", async () => { setEnvelope(await api("POST", "/edit", body), true); });
}

canvas.addEventListener("mousedown", (ev) => {
  if (!S.env || ev.button !== 0) return;
  const [x, y] = eventPos(ev.clientX, ev.clientY);
  const t = clampT(xToT(x)), l = yToLevel(y);
  if (S.tool === "draw") { S.drag = { kind: "draw", points: [[t, l]] }; }
  else if (S.tool === "add") { S.drag = { kind: "add", t, l }; }
  else {
    const hit = hitEvent(x, y);
    if (hit) S.drag = { kind: "event", t: hit[0], l: hit[1], nt: hit[0], nl: hit[1] };
    else S.drag = { kind: "select", t0: t, t1: t, x0: x };
  }
  ev.preventDefault();
  draw();
});

window.addEventListener("mousemove", (ev) => {
  const [x, y] = eventPos(ev.clientX, ev.clientY);
  const inside = x >= 0 && x <= canvas.clientWidth && y >= 0 && y <= canvas.clientHeight;
  $("hover").textContent = inside && S.env ? `t ${clampT(xToT(x)).toFixed(3)} s · level ${yToLevel(y).toFixed(3)}` : "";
  const d = S.drag;
  if (!d) { if (inside && S.tool === "select") canvas.style.cursor = hitEvent(x, y) ? "grab" : "crosshair"; return; }
  const t = clampT(xToT(x)), l = yToLevel(y);
  if (d.kind === "draw") { if (t !== d.points[d.points.length - 1][0]) d.points.push([t, l]); }
  else if (d.kind === "event") { d.nt = t; d.nl = l; }
  else if (d.kind === "select") { d.t1 = t; S.sel = [Math.min(d.t0, t), Math.max(d.t0, t)]; }
  draw();
});

window.addEventListener("mouseup", (ev) => {
  const d = S.drag;
  if (!d) return;
  S.drag = null;
  const [x] = eventPos(ev.clientX, ev.clientY);
  if (d.kind === "add") {
    edit({ op: "add_event", time: d.t, level: Math.max(0.02, d.l) });
  } else if (d.kind === "draw") {
    if (d.points.length >= 2) edit({ op: "draw", times: d.points.map((p) => p[0]), levels: d.points.map((p) => p[1]) });
  } else if (d.kind === "event") {
    if (Math.abs(d.nt - d.t) > 0.5 / S.env.rate || Math.abs(d.nl - d.l) > 0.002)
      edit({ op: "move_event", time: d.t, to_time: d.nt, level: d.nl });
  } else if (d.kind === "select") {
    if (Math.abs(x - d.x0) < 3) { S.sel = null; seek(d.t0); }
  }
  updateButtons();
  draw();
});

canvas.addEventListener("wheel", (ev) => {
  if (!S.env) return;
  ev.preventDefault();
  const [x] = eventPos(ev.clientX, ev.clientY);
  if (ev.shiftKey) pan((ev.deltaY || ev.deltaX) > 0 ? 0.1 : -0.1);
  else zoom(ev.deltaY < 0 ? 0.8 : 1.25, xToT(x));
}, { passive: false });

function zoom(f, center) {
  const [a, b] = S.view, full = duration(), start = S.env ? S.env.start : 0;
  const c = center === undefined ? (a + b) / 2 : center;
  let span = Math.min(full, Math.max(0.05, (b - a) * f));
  let na = c - (c - a) * span / (b - a);
  na = Math.min(Math.max(start, na), start + full - span);
  S.view = [na, na + span];
  draw();
}
function pan(frac) {
  const [a, b] = S.view, span = b - a, start = S.env ? S.env.start : 0;
  const na = Math.min(Math.max(start, a + frac * span), start + duration() - span);
  S.view = [na, na + span]; draw();
}

// ------------------------------------------------------------------ transport and sync
function seek(t) {
  const v = $("video"), a = $("audio");
  if (S.state && S.state.video) v.currentTime = t;
  if (a.src) a.currentTime = t;
  draw();
}
function syncOn() { return $("chk-sync").checked && !!$("audio").src && !!(S.state && S.state.video); }
function playPause() {
  const v = $("video"), a = $("audio");
  if (S.state && S.state.video) { if (v.paused) v.play(); else v.pause(); }
  else if (a.src) { if (a.paused) a.play(); else a.pause(); }
}
$("btn-play").onclick = playPause;
const video = $("video"), audio = $("audio");
video.addEventListener("play", () => {
  $("btn-play").textContent = "❚❚ Pause";
  if (syncOn()) { audio.currentTime = video.currentTime; audio.play().catch(() => {}); }
});
video.addEventListener("pause", () => { $("btn-play").textContent = "▶ Play"; if (syncOn()) audio.pause(); });
video.addEventListener("seeking", () => { if (syncOn()) audio.currentTime = video.currentTime; });
video.addEventListener("ended", () => { if (syncOn()) audio.pause(); });
$("chk-sync").addEventListener("change", () => { video.muted = syncOn(); if (!syncOn()) audio.pause(); });
setInterval(() => {   // keep the render on the picture: correct drifts over 40 ms
  video.muted = syncOn();
  if (syncOn() && !video.paused && Math.abs(audio.currentTime - video.currentTime) > 0.04) audio.currentTime = video.currentTime;
}, 250);
let lastDrawnT = -1;
function frame() {   // redraw while playing (the playhead moves) or when the time changed by a seek
  const t = currentTime();
  const playing = !(S.state && S.state.video ? video.paused : audio.paused);
  if (playing && S.env) {   // follow the playhead when zoomed in
    const [a, b] = S.view;
    if (t > b || t < a) { const span = b - a; const na = Math.min(Math.max(S.env.start, t - 0.1 * span), S.env.start + duration() - span); S.view = [na, na + span]; }
  }
  if (playing || t !== lastDrawnT) { draw(); lastDrawnT = t; }
  requestAnimationFrame(frame);
}

// ------------------------------------------------------------------ buttons
for (const btn of document.querySelectorAll(".tool")) {
  btn.onclick = () => {
    S.tool = btn.dataset.tool;
    for (const b of document.querySelectorAll(".tool")) b.classList.toggle("active", b === btn);
  };
}
$("btn-zoom-in").onclick = () => zoom(0.5);
$("btn-zoom-out").onclick = () => zoom(2);
$("btn-zoom-fit").onclick = () => { if (S.env) { S.view = [S.env.start, S.env.start + S.env.duration]; draw(); } };
$("btn-delete").onclick = () => S.sel && edit({ op: "remove", t0: S.sel[0], t1: S.sel[1] });
$("btn-scale").onclick = () => S.sel && edit({ op: "gain", t0: S.sel[0], t1: S.sel[1], factor: parseFloat($("in-scale").value) });
$("btn-gate").onclick = () => S.sel && edit({ op: "gate", t0: S.sel[0], t1: S.sel[1], threshold: parseFloat($("in-gate").value) });
$("btn-undo").onclick = () => quick("undo", async () => setEnvelope(await api("POST", "/undo"), true));
$("btn-redo").onclick = () => quick("redo", async () => setEnvelope(await api("POST", "/redo"), true));

$("file-video").addEventListener("change", (ev) => {
  const f = ev.target.files[0]; ev.target.value = "";
  if (!f) return;
  task("open video", async () => {
    progress("uploading video", 0);
    const st = await upload("/video", f, "video");
    S.env = null; S.sel = null;
    setState(st);
    setRoi(null);
    progress(`opened ${st.video.name}`, 1);
    if (st.note) message(st.note, "info");
  });
});
$("file-csv").addEventListener("change", (ev) => {
  const f = ev.target.files[0]; ev.target.value = "";
  if (!f) return;
  task("load envelope", async () => {
    const env = await upload("/envelope.csv", f, "envelope");
    setEnvelope(env, false);
    S.state = await api("GET", "/state"); setState(S.state);
    progress(`loaded ${f.name}`, 1);
    if (env.note) message(env.note, "info");
  });
});
$("file-ref").addEventListener("change", (ev) => {
  const files = Array.from(ev.target.files); ev.target.value = "";
  task("add recording", async () => {
    for (const f of files) setState(await upload("/references", f, f.name));
    progress(`${files.length} recording(s) added`, 1);
  });
});
$("sel-preset").addEventListener("change", () => { const p = $("sel-preset").value; if (p) $("in-prompt").value = p; });
$("sel-timing").addEventListener("change", updateButtons);
$("sel-yscale").addEventListener("change", draw);
$("sel-synth").addEventListener("change", updateButtons);

// ------------------------------------------------------------------ region of interest for the timing
const roiCanvas = $("roi");
S.roi = null;   // [x, y, w, h] in video pixels, or null for the whole frame
function videoScale() { const v = S.state && S.state.video; return v ? v.width / Math.max(1, roiCanvas.clientWidth) : 1; }
function drawRoi(rect) {
  const c = roiCanvas, W = c.clientWidth, H = c.clientHeight;
  if (c.width !== W || c.height !== H) { c.width = W; c.height = H; }
  const g = c.getContext("2d");
  g.clearRect(0, 0, W, H);
  const r = rect || (S.roi && S.roi.map((v) => v / videoScale()));
  if (!r) return;
  g.fillStyle = "rgba(0,0,0,0.45)"; g.fillRect(0, 0, W, H);
  g.clearRect(r[0], r[1], r[2], r[3]);
  g.strokeStyle = "#ffd43b"; g.lineWidth = 2; g.strokeRect(r[0] + 1, r[1] + 1, r[2] - 2, r[3] - 2);
}
function setRoi(roi) {
  S.roi = roi;
  $("roi-label").textContent = roi ? `x ${roi[0]}, y ${roi[1]}, ${roi[2]}×${roi[3]} px` : "whole frame";
  drawRoi();
}
$("btn-roi").onclick = () => {
  if (!(S.state && S.state.video)) { message("open a video first"); return; }
  roiCanvas.classList.add("drawing");
  message("drag a rectangle on the video around where the action is", "info");
};
$("btn-roi-clear").onclick = () => { roiCanvas.classList.remove("drawing"); setRoi(null); };
roiCanvas.addEventListener("mousedown", (ev) => {
  const r = roiCanvas.getBoundingClientRect();
  S.roiDrag = [ev.clientX - r.left, ev.clientY - r.top];
  ev.preventDefault();
});
roiCanvas.addEventListener("mousemove", (ev) => {
  if (!S.roiDrag) return;
  const r = roiCanvas.getBoundingClientRect(), [x0, y0] = S.roiDrag;
  const x1 = Math.min(r.width, Math.max(0, ev.clientX - r.left)), y1 = Math.min(r.height, Math.max(0, ev.clientY - r.top));
  drawRoi([Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)]);
});
roiCanvas.addEventListener("mouseup", (ev) => {
  if (!S.roiDrag) return;
  const r = roiCanvas.getBoundingClientRect(), [x0, y0] = S.roiDrag, k = videoScale(), v = S.state.video;
  S.roiDrag = null;
  roiCanvas.classList.remove("drawing");
  const x1 = Math.min(r.width, Math.max(0, ev.clientX - r.left)), y1 = Math.min(r.height, Math.max(0, ev.clientY - r.top));
  const x = Math.round(Math.min(x0, x1) * k), y = Math.round(Math.min(y0, y1) * k);
  const w = Math.min(v.width - x, Math.round(Math.abs(x1 - x0) * k)), h = Math.min(v.height - y, Math.round(Math.abs(y1 - y0) * k));
  // the motion timing needs 16 video pixels each way (a smaller region was refused only at the run)
  if (w < 16 || h < 16) { setRoi(null); message("the region was under 16 px of the video; the whole frame is used"); return; }
  setRoi([x, y, w, h]);
  message("");
});
window.addEventListener("resize", () => drawRoi());

$("btn-timing").onclick = () => task("timing", async () => {
  // the prompt tells the timing what to look for (footsteps) and how hits ring (metal, glass)
  const refs = document.querySelectorAll("#ref-list input[type=checkbox]:checked").length > 0;
  const job = await api("POST", "/timing", {
    backend: $("sel-timing").value, roi: S.roi, prompt: $("in-prompt").value || null, references: refs,
  });
  const res = await runJob(job);
  setState(await api("GET", "/state"));
  message(`timing found ${res.events} event(s); edit them on the timeline` +
    (res.replaced_edits ? " (it replaced the edits made while it ran: Undo brings them back)" : ""), "info");
});

$("btn-render").onclick = () => task("render", async () => {
  const refs = Array.from(document.querySelectorAll("#ref-list input[type=checkbox]")).filter((c) => c.checked).map((c) => c.dataset.ref);
  const body = {
    synth: $("sel-synth").value, prompt: $("in-prompt").value || null, references: refs,
    seed: parseInt($("in-seed").value || "0", 10), pan: $("chk-pan").checked, partial: $("chk-partial").checked,
  };
  const res = await runJob(await api("POST", "/render", body));
  setState(await api("GET", "/state"));
  const how = res.mode === "partial" ? `re-rendered ${res.span[0].toFixed(2)}–${res.span[1].toFixed(2)} s only`
    : res.mode === "unchanged" ? "nothing changed since the last render" : "rendered in full";
  message(`${how} (${res.seconds.toFixed(2)} s)`, "info");
  document.body.dataset.renderMode = res.mode;
  document.body.dataset.renders = String((parseInt(document.body.dataset.renders || "0", 10)) + 1);
});

$("btn-export").onclick = () => task("export", async () => {
  await runJob(await api("POST", "/export"));
  setState(await api("GET", "/state"));
  message("the video with the new sound is ready: Download video", "info");
});

document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
  const mod = ev.ctrlKey || ev.metaKey;
  if (mod && ev.key.toLowerCase() === "z") { ev.preventDefault(); (ev.shiftKey ? $("btn-redo") : $("btn-undo")).click(); }
  else if (mod && ev.key.toLowerCase() === "y") { ev.preventDefault(); $("btn-redo").click(); }
  else if ((ev.key === "Delete" || ev.key === "Backspace") && S.sel) { ev.preventDefault(); $("btn-delete").click(); }
  else if (ev.key === " ") { ev.preventDefault(); playPause(); }
  else if (ev.key === "Escape") { S.sel = null; updateButtons(); draw(); }
});
window.addEventListener("resize", draw);
// a clicked button gives the focus back, so Space plays instead of pressing it again
document.addEventListener("click", (ev) => { const b = ev.target.closest && ev.target.closest("button"); if (b) b.blur(); });
video.addEventListener("error", () => {
  if (S.state && S.state.video) message("this browser cannot play the video's format; the timeline, rendering and export still work (try an H.264 mp4 or a webm to watch it here)");
});

// ------------------------------------------------------------------ start
(async function start() {
  try {
    S.info = await api("GET", "/api/info");
    fillBackends(S.info);
    // a reload keeps this tab's session (its envelope, edits and render): a new one only when the
    // server no longer has it (restarted, or too many sessions)
    let st = null;
    const kept = sessionStorage.getItem("folai-session");
    if (kept) {
      S.sid = kept;
      try { st = await api("GET", "/state"); } catch (e) { st = null; }
    }
    if (!st) st = await api("POST", "/api/session");
    S.sid = st.session;
    sessionStorage.setItem("folai-session", S.sid);
    setState(st);
    $("status").textContent = `folai ${S.info.version} · session ready`;
    document.body.dataset.ready = "1";
    requestAnimationFrame(frame);
  } catch (e) {
    $("status").textContent = "not connected";
    message(`the studio could not start: ${e.message}`);
  }
})();
