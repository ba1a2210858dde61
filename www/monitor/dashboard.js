// The model-health dashboard: renders a monitor report (src/monitor/report.rs `Report`) as charts and
// tables. Two homes, one script (bundled with Chart.js by www/build.mjs):
//   * /monitor/ on the worker: the bearer token is typed into the page and kept in its memory only (no
//     storage any other page of the origin could read; a reload asks again), and the report is fetched
//     from GET /v1/monitor. The page's Content-Security-Policy (target/www/_headers, www/build.mjs)
//     allows this script, same-origin fetches and the one <style> below (by its hash) — nothing inline;
//   * `leadscore monitor --report report.html`: the report is inlined as <script id="report-data">.
// Nothing here computes a metric: every number is the report's.
import {
  BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement,
  PointElement, ScatterController, Tooltip,
} from 'chart.js';
import { COLORS, CSS } from './style.js';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement,
  PointElement, ScatterController, Legend, Tooltip);
Chart.defaults.animation = false;
Chart.defaults.font.family = 'system-ui, sans-serif';

const TOKEN_NOTE = 'kept in this page only: reloading asks again';

const fmt = (v, d = 3) => (v === null || v === undefined ? '—' : Number(v).toFixed(d));
const pct = (v) => (v === null || v === undefined ? '—' : `${(100 * v).toFixed(1)} %`);
const day = (ms) => new Date(ms).toISOString().replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC');
const pill = (level = 'insufficient_data') => `<span class="pill ${level}">${level.replace('_', ' ')}</span>`;
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

function el(tag, attrs = {}, html = '') {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.innerHTML = html;
  return e;
}

const charts = [];
function chart(parent, title, config) {
  const card = el('div', { class: 'card' }, `<h2>${esc(title)}</h2>`);
  const canvas = el('canvas');
  card.append(canvas);
  parent.append(card);
  charts.push(new Chart(canvas, config));
  return card;
}

function scoreChart(parent, w) {
  const n = w.score.live.reduce((a, b) => a + b, 0) || 1;
  chart(parent, `Score distribution: live (${w.decisions} decisions) vs baseline`, {
    type: 'bar',
    data: {
      labels: w.score.bins,
      datasets: [
        { label: 'baseline share', data: w.score.baseline, backgroundColor: COLORS.base },
        { label: 'live share', data: w.score.live.map((c) => c / n), backgroundColor: COLORS.live },
      ],
    },
    options: { scales: { x: { title: { display: true, text: 'ai_score' } }, y: { title: { display: true, text: 'share' } } } },
  });
}

function psiChart(parent, w) {
  const rows = [w.score, ...w.features];
  // Calendar features (set by the window's dates) are shown, grey, and never alert.
  const names = rows.map((d) => (d.calendar ? `${d.name} (calendar)` : d.name));
  const psi = rows.map((d) => d.drift.psi ?? 0);
  const line = (v, color, label) => ({
    type: 'line', label, data: names.map(() => v), borderColor: color, borderDash: [6, 4], pointRadius: 0, borderWidth: 2,
  });
  chart(parent, 'PSI per feature and on the score (warning 0.1, alert 0.25)', {
    type: 'bar',
    data: {
      labels: names,
      datasets: [
        // Coloured by the verdict: a window too small to judge is grey whatever its value.
        { label: 'PSI', data: psi, backgroundColor: rows.map((d) => (d.calendar ? COLORS.muted : ({ alert: COLORS.alert, warning: COLORS.warn, ok: COLORS.ok })[d.drift.level] ?? COLORS.muted)) },
        line(0.1, COLORS.warn, 'warning 0.1'),
        line(0.25, COLORS.alert, 'alert 0.25'),
      ],
    },
    options: { scales: { y: { beginAtZero: true } } },
  });
}

function calibrationChart(parent, w) {
  const bins = w.accuracy.live.calibration.bins.filter((b) => b.rows > 0);
  chart(parent, `Calibration (${w.accuracy.live.calibration.rows} labelled, ECE ${fmt(w.accuracy.live.calibration.ece)}; card ${fmt(w.accuracy.baseline_ece)})`, {
    type: 'scatter',
    data: {
      datasets: [
        { label: 'observed rate by predicted probability', data: bins.map((b) => ({ x: b.mean_p, y: b.rate })), showLine: true, borderColor: COLORS.live, backgroundColor: COLORS.live },
        { label: 'perfect calibration', data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], showLine: true, borderColor: COLORS.base, borderDash: [4, 4], pointRadius: 0 },
      ],
    },
    options: { scales: { x: { min: 0, max: 1, title: { display: true, text: 'mean predicted' } }, y: { min: 0, max: 1, title: { display: true, text: 'observed' } } } },
  });
}

function tierChart(parent, w) {
  const t = w.accuracy.live.tier_conversion;
  const names = ['hot', 'warm', 'cold'];
  chart(parent, 'Conversion by tier (95 % Wilson interval in the tooltip)', {
    type: 'bar',
    data: {
      labels: names.map((n, i) => `${n} (${t[i].rows})`),
      datasets: [{ label: 'conversion', data: t.map((r) => r.rate ?? 0), backgroundColor: [COLORS.alert, COLORS.warn, COLORS.base] }],
    },
    options: {
      plugins: { tooltip: { callbacks: { afterLabel: (c) => `interval ${pct(t[c.dataIndex].low)} – ${pct(t[c.dataIndex].high)} on ${t[c.dataIndex].rows}` } } },
      scales: { y: { beginAtZero: true, max: 1 } },
    },
  });
}

function trendChart(parent, report) {
  if (report.windows.length < 2) return;
  chart(parent, 'Score PSI and realized AUC per window', {
    type: 'line',
    data: {
      labels: report.windows.map((w) => day(w.start).slice(0, 10) + (w.arm ? ` ${w.arm}` : '')),
      datasets: [
        { label: 'score PSI', data: report.windows.map((w) => w.score.drift.psi), borderColor: COLORS.live },
        { label: 'max feature PSI (calendar features aside)', data: report.windows.map((w) => Math.max(...w.features.filter((f) => !f.calendar).map((f) => f.drift.psi ?? 0))), borderColor: COLORS.warn },
        { label: 'realized AUC', data: report.windows.map((w) => w.accuracy.live.auc.value), borderColor: COLORS.ok },
      ],
    },
  });
}

function windowsTable(report) {
  const rows = report.windows.map((w, i) => {
    const judged = w.features.filter((f) => !f.calendar);
    const maxF = judged.reduce((m, f) => ((f.drift.psi ?? 0) > (m.drift.psi ?? 0) ? f : m), judged[0]);
    const kinds = w.alerts.map((a) => `${esc(a.type)} ${pill(a.level)}`).join('<br>') || '—';
    return `<tr data-window="${i}"><td>${day(w.start)}</td><td>${esc(w.arm ?? '—')}</td><td class="n">${w.decisions}</td>
      <td class="n">${fmt(w.score.drift.psi)} ${pill(w.score.drift.level)}</td>
      <td>${esc(maxF?.name ?? '')} ${fmt(maxF?.drift.psi)}</td>
      <td class="n">${fmt(w.accuracy.live.auc.value)} / ${fmt(w.accuracy.baseline_auc)}</td>
      <td class="n">${w.accuracy.live.auc.positives} / ${w.accuracy.live.auc.rows} (${w.accuracy.pending} pending)</td>
      <td>${pill(w.accuracy.level)}</td><td>${kinds}</td></tr>`;
  });
  return `<table><tr><th>window</th><th>arm</th><th>decisions</th><th>score PSI</th><th>largest feature PSI</th>
    <th>AUC live / card</th><th>positives / labelled</th><th>accuracy</th><th>alerts</th></tr>${rows.join('')}</table>`;
}

function segmentsTable(w) {
  const rows = w.segments.map((s) => `<tr><td>${esc(s.feature)}</td><td>${esc(s.label ?? s.value)}</td>
    <td class="n">${s.decisions}</td><td class="n">${pct(s.share)}</td><td class="n">${pct(s.train_share)}</td>
    <td class="n">${fmt(s.accuracy.live.auc.value)}</td><td class="n">${fmt(s.accuracy.baseline_auc)}</td>
    <td class="n">${s.accuracy.live.auc.positives}</td><td>${pill(s.accuracy.level)}</td></tr>`);
  return `<table><tr><th>feature</th><th>segment</th><th>decisions</th><th>share</th><th>training share</th>
    <th>AUC live</th><th>AUC card</th><th>positives</th><th>verdict</th></tr>${rows.join('')}</table>`;
}

function armsTable(report) {
  const exps = report.experiments ?? [];
  if (!exps.length) return '<p>No experiment in these windows.</p>';
  return exps.map((e) => `<p><b>${esc(e.key)}</b> ${day(e.window_start)}: SRM χ² ${fmt(e.srm.chi_square, 2)},
    p = ${e.srm.p_value === null ? "—" : Number(e.srm.p_value).toExponential(2)} ${pill(e.level)}</p>
    <table><tr><th>arm</th><th>model</th><th>weight</th><th>visitors</th><th>conversion</th><th>interval</th></tr>
    ${e.arms.map((a) => `<tr><td>${esc(a.arm)}</td><td>${esc(a.model)}</td><td class="n">${fmt(a.weight, 2)}</td>
      <td class="n">${a.visitors}</td><td class="n">${pct(a.conversion.rate)}</td>
      <td>${pct(a.conversion.low)} – ${pct(a.conversion.high)}</td></tr>`).join('')}</table>`).join('');
}

function render(root, report) {
  for (const c of charts.splice(0)) c.destroy();
  root.querySelector('#report')?.remove();
  const box = el('div', { id: 'report' });
  root.append(box);
  box.append(el('div', { class: 'sub' }, `${esc(report.model_version)} · ${report.windows.length} windows of
    ${report.window_ms / 3_600_000} h · label ${esc(report.label)} within ${report.outcome_window_ms / 86_400_000} d ·
    minimum ${report.gate.min_scores} decisions / ${report.gate.min_positives} positives · ${report.alerts.length} alerts`));
  if (!report.windows.length) {
    box.append(el('div', { class: 'card' }, 'No scored decisions in this period.'));
    return;
  }
  box.append(el('div', { class: 'card' }, `<h2>Windows</h2>${windowsTable(report)}`));
  const pick = el('div', { class: 'card' }, '<label>Window: <select id="window"></select></label>');
  const select = pick.querySelector('select');
  report.windows.forEach((w, i) => select.append(el('option', { value: String(i) }, `${day(w.start)}${w.arm ? ` · ${esc(w.arm)}` : ''} · ${w.decisions} decisions`)));
  box.append(pick);
  const detail = el('div');
  box.append(detail);
  const show = (i) => {
    for (const c of charts.splice(0)) c.destroy();
    detail.innerHTML = '';
    const w = report.windows[i];
    const grid = el('div', { class: 'grid' });
    detail.append(grid);
    scoreChart(grid, w);
    psiChart(grid, w);
    calibrationChart(grid, w);
    tierChart(grid, w);
    trendChart(detail, report);
    detail.append(el('div', { class: 'card' }, `<h2>Segments</h2>${segmentsTable(w)}`));
    detail.append(el('div', { class: 'card' }, `<h2>Experiment arms</h2>${armsTable(report)}`));
  };
  // The latest window with an alert, else the latest.
  let first = report.windows.length - 1;
  for (let i = report.windows.length - 1; i >= 0; i--) if (report.windows[i].alerts.length) { first = i; break; }
  select.value = String(first);
  select.addEventListener('change', () => show(Number(select.value)));
  show(first);
}

async function live(root) {
  const form = el('form', { class: 'card login' }, `<label title="${TOKEN_NOTE}">API token <input type="password" name="token" autocomplete="off"></label>
    <label>from <input type="date" name="from"></label><label>to <input type="date" name="to"></label>
    <button type="submit">Load</button><span class="error"></span>`);
  root.append(form);
  const load = async () => {
    const err = form.querySelector('.error');
    err.textContent = '';
    const q = new URLSearchParams();
    if (form.from.value) q.set('from', form.from.value);
    if (form.to.value) q.set('to', form.to.value);
    const r = await fetch(`/v1/monitor?${q}`, { headers: { authorization: `Bearer ${form.token.value}` } });
    const body = await r.json().catch(() => null);
    if (!r.ok) {
      err.textContent = body?.error?.message ?? `HTTP ${r.status}`;
      return;
    }
    render(root, body);
    root.dataset.loaded = 'true';
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    load().catch((e) => (form.querySelector('.error').textContent = String(e)));
  });
  const params = new URLSearchParams(location.search);
  if (params.get('from')) form.from.value = params.get('from');
  if (params.get('to')) form.to.value = params.get('to');
}

function main() {
  document.head.append(el('style', {}, CSS));
  const root = document.getElementById('app') ?? document.body.appendChild(el('div', { id: 'app' }));
  root.append(el('h1', {}, 'leadscore · model health'));
  const inline = document.getElementById('report-data');
  if (inline) {
    render(root, JSON.parse(inline.textContent));
    root.dataset.loaded = 'true';
  } else {
    live(root).catch((e) => root.append(el('p', { class: 'error' }, esc(String(e)))));
  }
}

main();
