// The cinedex page. Every text from the API (film names, transcripts, what a model wrote) is put into the page as
// text, never as markup; the one exception, a search hit's highlight, is rebuilt keeping only its <b> marks.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(path, options = {}) {
  const reply = await fetch(path, { credentials: "same-origin", ...options });
  if (!reply.ok) {
    let detail = reply.statusText;
    try {
      const body = await reply.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (_) { /* not JSON */ }
    throw new Error(`${reply.status}: ${detail}`);
  }
  return reply.json();
}

function timecode(seconds) {
  const s = Math.max(0, seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return [h, m, sec].map((n) => String(n).padStart(2, "0")).join(":");
}

function setMessage(node, text, isError = false) {
  node.textContent = text;
  node.classList.toggle("error", isError);
}

// A highlight is HTML from the index (<b> around matched words). It is parsed in an inert document and only its
// text and <b> elements are copied, so nothing a model wrote can become markup.
function highlighted(html) {
  const parsed = new DOMParser().parseFromString(`<div>${html}</div>`, "text/html");
  const out = el("span", { class: "text" });
  const copy = (from, to) => {
    for (const node of from.childNodes) {
      if (node.nodeType === Node.TEXT_NODE) to.append(node.textContent);
      else if (node.nodeType === Node.ELEMENT_NODE && node.tagName === "B") to.append(el("b", {}, node.textContent));
      else if (node.nodeType === Node.ELEMENT_NODE) copy(node, to);
    }
  };
  copy(parsed.body.firstChild || parsed.body, out);
  return out;
}

// --- tabs -----------------------------------------------------------------------------------------------------

function showTab(name) {
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== name;
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  if (name === "library") loadLibrary();
  if (name === "search") loadFilmChoices();
}

for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));

// --- library ----------------------------------------------------------------------------------------------------

function counts(map) {
  return Object.entries(map || {}).map(([k, v]) => `${k} ${v}`).join(", ");
}

async function loadLibrary() {
  const body = $("library-table").querySelector("tbody");
  let films;
  try {
    films = await api("api/films");
  } catch (error) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "error" }, error.message)));
    return;
  }
  $("library-empty").hidden = films.length > 0;
  body.replaceChildren(...films.map((film) => {
    const run = film.last_run;
    return el("tr", { "data-video": film.video_id },
      el("td", {}, el("button", { class: "link", onclick: () => openFilm(film.video_id) }, film.name),
        el("div", { class: "hint" }, film.video_id.slice(0, 12))),
      el("td", {}, timecode(film.info.duration_s)),
      el("td", {}, `${film.events}`, el("div", { class: "hint" }, counts(film.events_by_source))),
      el("td", {}, counts(film.events_by_scene_type)),
      el("td", {}, film.languages.join(", ") || "-"),
      el("td", {}, film.pipeline_versions.join(", ") || "-"),
      el("td", {}, run ? [el("span", { class: `state ${run.state}` }, run.state), " ",
        el("span", { class: "hint" }, (run.end_date || run.run_after || "").replace("T", " ").slice(0, 19))] : "-"));
  }));
}

// --- upload and run ---------------------------------------------------------------------------------------------

let formFields = [];

async function loadForm() {
  const fieldset = $("form-fields");
  try {
    formFields = (await api("api/form")).filter((field) => field.name !== "video");
  } catch (error) {
    fieldset.append(el("p", { class: "error" }, `The trigger form could not be read: ${error.message}`));
    return;
  }
  for (const field of formFields) {
    const schema = field.schema || {};
    const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
    let input;
    if (type === "boolean") {
      input = el("input", { type: "checkbox", name: field.name });
      input.checked = Boolean(field.value);
    } else {
      input = el("input", {
        name: field.name, type: type === "integer" || type === "number" ? "number" : "text",
        step: type === "integer" ? "1" : type === "number" ? "any" : undefined,
        min: schema.minimum, max: schema.maximum,
      });
      input.value = field.value === null || field.value === undefined ? "" : field.value;
    }
    input.dataset.kind = type || "string";
    fieldset.append(el("label", { class: "field" }, el("span", {}, field.title), input,
      el("small", {}, field.description)));
  }
}

function formConf() {
  const conf = {};
  for (const input of $("form-fields").querySelectorAll("input")) {
    const kind = input.dataset.kind;
    if (kind === "boolean") conf[input.name] = input.checked;
    else if (kind === "integer") conf[input.name] = parseInt(input.value, 10);
    else if (kind === "number") conf[input.name] = parseFloat(input.value);
    else conf[input.name] = input.value;
  }
  return conf;
}

// XMLHttpRequest rather than fetch: it reports upload progress. The body is the file itself, streamed.
function uploadFile(file) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PUT", `api/uploads?name=${encodeURIComponent(file.name)}`);
    request.setRequestHeader("Content-Type", "application/octet-stream");
    const bar = $("upload-progress"), sent = $("upload-bytes");
    const megabytes = (bytes) => (bytes / 1e6).toFixed(1);
    bar.hidden = sent.hidden = false;
    request.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      bar.value = e.loaded / e.total;
      sent.textContent = `${megabytes(e.loaded)} of ${megabytes(e.total)} MB sent`;
    };
    request.upload.onload = () => {
      bar.value = 1;
      sent.textContent = `${megabytes(file.size)} of ${megabytes(file.size)} MB sent`;
    };
    request.onload = () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
      if (request.status === 201) resolve(body);
      else reject(new Error(`${request.status}: ${body.detail || request.statusText}`));
    };
    request.onerror = () => reject(new Error("the upload was interrupted"));
    request.send(file);
  });
}

let runTimer = null;

function duration(seconds) {
  const s = Math.round(seconds);
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// "412 of 1200 s of audio decoded, about 2 min 10 s left": the stage's own figures while it runs.
function taskProgress(task) {
  const bar = el("progress", { max: "1", value: String(task.fraction), "aria-label": `${task.task_id} progress` });
  if (task.total === null || task.state === "success" || task.state === "skipped") {
    return [bar];
  }
  const figures = `${Math.round(task.done)} of ${Math.round(task.total)} ${task.unit}`;
  const left = task.seconds_left === null ? "" : `, about ${duration(task.seconds_left)} left`;
  return [bar, " ", el("span", { class: "hint" }, figures + left)];
}

async function followRun(runId) {
  clearTimeout(runTimer);
  $("run").hidden = false;
  $("run-id").textContent = runId;
  let run;
  try {
    run = await api(`api/runs/${encodeURIComponent(runId)}`);
  } catch (error) {
    setMessage($("upload-message"), `Could not read the run: ${error.message}`, true);
    runTimer = setTimeout(() => followRun(runId), 3000);
    return;
  }
  $("run-state").textContent = run.state;
  $("run-state").className = `state ${run.state}`;
  $("run-stage").textContent = run.stage || "waiting for the scheduler";
  $("run-paused").hidden = !run.paused;
  $("run-progress").value = run.fraction;
  const current = run.tasks.find((task) => task.task_id === run.stage);
  const left = current && current.seconds_left !== null ? `, ${run.stage} about ${duration(current.seconds_left)} left` : "";
  $("run-percent").textContent = `${Math.floor(run.fraction * 100)}%${left}`;
  $("run-tasks").querySelector("tbody").replaceChildren(...run.tasks.map((task) => el("tr", { "data-task": task.task_id },
    el("td", {}, task.task_id + (task.instances > 1 ? ` (${task.instances})` : "")),
    el("td", {}, el("span", { class: `state ${task.state}` }, task.state)),
    el("td", { class: "task-progress" }, taskProgress(task)),
    el("td", {}, task.try_number),
    el("td", {}, (task.start_date || "").replace("T", " ").slice(0, 19)),
    el("td", {}, (task.end_date || "").replace("T", " ").slice(0, 19)))));
  $("run-error").hidden = !run.error;
  $("run-error").textContent = run.error;
  if (run.state === "success" || run.state === "failed") {
    $("run-done").hidden = run.state !== "success";
    $("run").dataset.finished = run.state;
    $("run-open").onclick = () => openFilmOfRun(run);
    loadLibrary();
    return;
  }
  runTimer = setTimeout(() => followRun(runId), 2000);
}

async function openFilmOfRun(run) {
  const films = await api("api/films");
  const film = films.find((f) => f.last_run && f.last_run.run_id === run.run_id);
  if (film) openFilm(film.video_id);
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  const button = $("upload-button");
  button.disabled = true;
  $("run").hidden = true;
  delete $("run").dataset.finished;
  try {
    setMessage($("upload-message"), `Uploading ${file.name} ...`);
    const uploaded = await uploadFile(file);
    setMessage($("upload-message"), `Uploaded as ${uploaded.name} (${timecode(uploaded.info.duration_s)}); starting the run ...`);
    const run = await api("api/runs", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ conf: { ...formConf(), video: uploaded.path } }),
    });
    setMessage($("upload-message"), `Indexing ${uploaded.name}.`);
    followRun(run.run_id);
  } catch (error) {
    setMessage($("upload-message"), error.message, true);
  } finally {
    button.disabled = false;
    $("upload-progress").hidden = true;
  }
});

// --- search -------------------------------------------------------------------------------------------------------

async function loadFilmChoices() {
  const select = $("search-film");
  const chosen = select.value;
  try {
    const films = await api("api/films");
    select.replaceChildren(el("option", { value: "" }, "all films"),
      ...films.map((film) => el("option", { value: film.video_id }, film.name)));
    select.value = chosen;
  } catch (_) { /* the search still works over all films */ }
}

function play(player, videoId, startSeconds, start = true) {
  const source = `api/films/${encodeURIComponent(videoId)}/video`;
  const seek = () => {
    player.currentTime = startSeconds;
    if (start) player.play().catch(() => { /* autoplay refused: the person presses play */ });
  };
  if (player.dataset.video !== videoId) {
    player.dataset.video = videoId;
    player.src = source;
    player.addEventListener("loadedmetadata", seek, { once: true });
  } else {
    seek();
  }
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const params = new URLSearchParams({ q: $("search-query").value, limit: "20" });
  if ($("search-film").value) params.set("video", $("search-film").value);
  setMessage($("search-message"), "Searching ...");
  let hits;
  try {
    hits = await api(`api/search?${params}`);
  } catch (error) {
    setMessage($("search-message"), error.message, true);
    return;
  }
  setMessage($("search-message"), hits.length ? `${hits.length} hits` : "No hits.");
  lastHits = hits;  // the film view places them on its timeline
  $("hits").replaceChildren(...hits.map((hit) => {
    const who = [hit.speaker, ...(hit.characters || []).filter((c) => c !== hit.speaker)].filter(Boolean).join(", ");
    const open = () => {
      play($("search-player"), hit.video_id, hit.start_s);
      $("search-now-playing").textContent = `${timecode(hit.start_s)} - ${timecode(hit.end_s)}`;
    };
    // Up and down move between hits, Enter plays the one in focus.
    const keys = (e) => {
      const next = { ArrowDown: e.currentTarget.nextElementSibling, ArrowUp: e.currentTarget.previousElementSibling }[e.key];
      if (e.key === "Enter") open();
      else if (next) { e.preventDefault(); next.focus(); }
    };
    const inFilm = el("button", { class: "link in-film", onclick: (e) => { e.stopPropagation(); openFilm(hit.video_id, hit.start_s); } },
      "in the film");
    // `lang` from the event: the browser picks the right font and line breaking for Chinese, Japanese, Korean.
    return el("li", { class: "hit", tabindex: 0, "data-start": hit.start_s, "data-video": hit.video_id, onclick: open,
      lang: hit.language || undefined,
      onkeydown: keys },
      hit.shot_id !== null && hit.shot_id !== undefined
        ? el("img", { src: `api/films/${encodeURIComponent(hit.video_id)}/shots/${hit.shot_id}.jpg`, alt: "" }) : null,
      el("div", {},
        el("div", {}, el("span", { class: "time" }, `${hit.start_time} - ${hit.end_time}`), " ",
          el("span", { class: "who" }, `[${who || hit.scene_type}]`)),
        hit.highlight ? highlighted(hit.highlight) : el("span", { class: "text" }, hit.content || hit.event),
        hit.event && hit.content ? el("div", { class: "hint" }, hit.event) : null, inFilm));
  }));
});

// --- one film -------------------------------------------------------------------------------------------------------

let currentFilm = null;
let lastHits = [];

// The timeline shows the whole film or a window of it; zoomed in, it scrolls and follows the player.
const ZOOMS = [["whole film", 0], ["1 hour", 3600], ["10 minutes", 600], ["1 minute", 60], ["10 seconds", 10]];
const speakerOf = (e) => e.speaker || "(unknown voice)";

function lane(label, items, duration, kind, player, videoId) {
  const row = el("div", { class: `lane ${kind}`, "data-lane": label });
  for (const item of items) {
    const open = () => play(player, videoId, item.start_s);
    const bar = el("div", { class: `bar ${kind}`, title: item.tip, tabindex: 0, role: "button", "aria-label": item.tip,
      "data-start": item.start_s, onclick: open,
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } } },
      item.image ? el("img", { src: item.image, alt: "", loading: "lazy" }) : null);
    // Through the CSS object model: the page's content security policy refuses style attributes.
    bar.style.left = `${(100 * item.start_s) / duration}%`;
    bar.style.width = `${(100 * Math.max(0, item.end_s - item.start_s)) / duration}%`;
    row.append(bar);
  }
  return row;
}

function drawTimeline(film, player) {
  const duration = film.info.duration_s || 1;
  const events = film.timeline;
  const tip = (e) => `${timecode(e.start_s)}-${timecode(e.end_s)} ${e.speaker ? e.speaker + ": " : ""}${e.content || e.event}`;
  const of = (source) => events.filter((e) => e.source === source).map((e) => ({ ...e, tip: tip(e) }));
  const speakers = [...new Set(events.filter((e) => e.source === "asr").map(speakerOf))];
  const hits = lastHits.filter((h) => h.video_id === film.video_id)
    .map((h) => ({ ...h, tip: `hit: ${timecode(h.start_s)} ${h.content || h.event}` }));
  const shots = film.shots.map((s) => ({ ...s, tip: `shot ${s.shot_id} at ${timecode(s.start_s)}`,
    image: `api/films/${encodeURIComponent(film.video_id)}/shots/${s.shot_id}.jpg` }));
  const onScreen = (film.people || []).map((p) => [p.name, p.appearances.map(([start_s, end_s]) =>
    ({ start_s, end_s, tip: `${timecode(start_s)}-${timecode(end_s)} ${p.name} on screen` })), "person"]);
  const lanes = [
    ["shots", shots, "thumbs"],
    ["chapters", of("chapter"), "chapter"],
    ...speakers.map((who) => [who, of("asr").filter((e) => speakerOf(e) === who), "asr"]),
    ...onScreen,
    ["on-screen text", of("ocr"), "ocr"],
    ["visual", of("vision"), "vision"],
    ["search hits", hits, "hit"],
  ].filter(([label, items]) => items.length || label === "shots");
  const track = el("div", { class: "timeline-track" }, ...lanes.map(([label, items, kind]) =>
    lane(label, items, duration, kind, player, film.video_id)), el("div", { class: "playhead", "aria-hidden": "true" }));
  const scroller = el("div", { class: "timeline-scroll" }, track);
  $("timeline").replaceChildren(
    el("div", { class: "lane-labels" }, ...lanes.map(([label, , kind]) => el("div", { class: `lane-label ${kind}` }, label))),
    scroller);
  const zoom = $("timeline-zoom");
  zoom.replaceChildren(...ZOOMS.filter(([, span]) => span < duration).map(([label, span]) => el("option", { value: span }, label)));
  const follow = () => {
    const at = (player.dataset.video === film.video_id ? player.currentTime : 0) / duration;
    track.querySelector(".playhead").style.left = `${100 * at}%`;
    const x = at * track.clientWidth;
    if (x < scroller.scrollLeft || x > scroller.scrollLeft + scroller.clientWidth) {
      scroller.scrollLeft = Math.max(0, x - scroller.clientWidth / 4);
    }
  };
  zoom.onchange = () => {
    const span = Number(zoom.value);
    track.style.width = `${span ? Math.max(1, duration / span) * 100 : 100}%`;
    follow();
  };
  player.ontimeupdate = follow;
  zoom.onchange();
}

function exportLink(videoId, kind, label) {
  return el("a", { href: `api/films/${encodeURIComponent(videoId)}/export/${kind}`, download: "" }, label);
}

async function openFilm(videoId, at = 0) {
  const film = await api(`api/films/${encodeURIComponent(videoId)}`);
  currentFilm = film;
  $("film-tab").hidden = false;
  showTab("film");
  const player = $("film-player");
  play(player, film.video_id, at, at > 0);
  $("film-name").textContent = film.name;
  const run = film.last_run;
  $("film-facts").textContent = [timecode(film.info.duration_s), `${film.info.width}x${film.info.height}`,
    `${film.events} events (${counts(film.events_by_source)})`, `languages: ${film.languages.join(", ") || "-"}`,
    `pipeline ${film.pipeline_versions.join(", ") || "-"}`, run ? `last run ${run.state}` : "no run recorded",
    film.validation ? `validation: ${film.validation.valid} of ${film.validation.total} valid` : ""]
    .filter(Boolean).join(" · ");
  $("film-downloads").replaceChildren(exportLink(film.video_id, "transcript.srt", "Transcript (SRT)"),
    exportLink(film.video_id, "transcript.vtt", "Transcript (VTT)"), exportLink(film.video_id, "events.json", "Events (JSON)"),
    exportLink(film.video_id, "bulk.ndjson", "Elasticsearch bulk (NDJSON)"),
    film.report ? el("a", { href: `api/films/${encodeURIComponent(film.video_id)}/files/${film.report}`, target: "_blank",
      rel: "noopener" }, "Run report") : null);

  drawTimeline(film, player);
  const events = film.timeline;
  const speakers = [...new Set(events.filter((e) => e.source === "asr").map(speakerOf))];

  const summary = events.find((e) => e.source === "summary");
  $("film-summary").textContent = summary ? summary.content : "No summary (the film-level pass needs a vision model).";
  $("film-chapters").replaceChildren(...events.filter((e) => e.source === "chapter").map((e) =>
    el("li", { onclick: () => play(player, film.video_id, e.start_s) }, `${timecode(e.start_s)} `, el("strong", {}, e.event), ` ${e.content}`)));
  $("film-people").replaceChildren(...(film.people || []).map((p) => el("li", {},
    el("button", { class: "person", title: `first on screen at ${timecode(p.appearances[0][0])}`,
      onclick: () => play(player, film.video_id, p.appearances[0][0]) },
      p.face ? el("img", { src: `api/films/${encodeURIComponent(film.video_id)}/files/${p.face}`, alt: `face of ${p.name}`,
        width: 48, height: 48 }) : null,
      el("span", {}, p.name), el("small", {}, `${Math.round(p.screen_time_s)} s on screen`)))));
  if (!(film.people || []).length) $("film-people").replaceChildren(el("li", { class: "hint" }, "No one found on screen."));
  $("film-speakers").replaceChildren(...speakers.map((who) => el("div", {}, el("h4", {}, who),
    el("ol", {}, events.filter((e) => e.source === "asr" && speakerOf(e) === who).map((e) =>
      el("li", { onclick: () => play(player, film.video_id, e.start_s), lang: e.language || undefined },
      `${timecode(e.start_s)} ${e.content}`))))));

  const fill = (select, values, label) => {
    select.replaceChildren(el("option", { value: "" }, label), ...[...new Set(values)].sort().map((v) => el("option", { value: v }, v)));
  };
  fill($("filter-source"), events.map((e) => e.source), "every source");
  fill($("filter-scene"), events.map((e) => e.scene_type), "every scene type");
  fill($("filter-speaker"), events.map((e) => e.speaker).filter(Boolean), "every speaker");
  fill($("filter-person"), events.flatMap((e) => e.people || []), "anyone on screen");
  $("filter-text").value = "";
  renderEvents();
}

function renderEvents() {
  if (!currentFilm) return;
  const source = $("filter-source").value, scene = $("filter-scene").value, speaker = $("filter-speaker").value;
  const person = $("filter-person").value;
  const text = $("filter-text").value.trim().toLowerCase();
  const player = $("film-player");
  const rows = currentFilm.timeline.filter((e) => (!source || e.source === source) && (!scene || e.scene_type === scene)
    && (!speaker || e.speaker === speaker) && (!person || (e.people || []).includes(person))
    && (!text || `${e.content} ${e.event} ${e.characters.join(" ")}`.toLowerCase().includes(text)));
  $("event-table").querySelector("tbody").replaceChildren(...rows.map((e) => el("tr", { lang: e.language || undefined },
    el("td", {}, el("button", { class: "link", onclick: () => play(player, currentFilm.video_id, e.start_s) },
      `${e.start_time}-${e.end_time}`)),
    el("td", {}, e.source), el("td", {}, e.scene_type), el("td", {}, e.speaker), el("td", {}, e.characters.join(", ")),
    el("td", {}, (e.people || []).join(", ")), el("td", {}, e.event), el("td", {}, e.content))));
}

for (const id of ["filter-source", "filter-scene", "filter-speaker", "filter-person", "filter-text"]) {
  $(id).addEventListener("input", renderEvents);
}
$("event-filters").addEventListener("submit", (e) => e.preventDefault());

loadForm();
loadLibrary();
