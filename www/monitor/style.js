// The dashboard's colours and its one stylesheet, apart so that www/build.mjs can hash the exact text
// for /monitor/'s Content-Security-Policy (style-src 'sha256-…'): the page injects it as a <style>.
export const COLORS = { base: '#8aa1b8', live: '#d9534f', ok: '#2e7d32', warn: '#f0ad4e', alert: '#c62828', muted: '#b0b0b0' };

export const CSS = `
body{margin:0;font:14px/1.45 system-ui,sans-serif;color:#1d2733;background:#f5f7fa}
#app{max-width:1180px;margin:0 auto;padding:20px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:0 0 8px}
.sub{color:#5b6b7b;margin-bottom:16px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.card{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:14px;margin-bottom:16px}
.card canvas{max-height:260px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef1f4}
th{color:#5b6b7b;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff}
.ok{background:${COLORS.ok}} .warning{background:${COLORS.warn}} .alert{background:${COLORS.alert}}
.insufficient_data{background:#90a4ae}
form.login{display:flex;gap:8px;align-items:center}
input[type=password],input[type=date]{padding:6px;border:1px solid #c4ccd5;border-radius:4px}
button{padding:6px 12px;border:0;border-radius:4px;background:#1d4ed8;color:#fff;cursor:pointer}
select{padding:4px}
.error{color:#c62828}
`;
