// Acme demo site: consent banner, leadscore debug panel, demo-request form.
// Uses only the public `leadscore` API (works before and after the tracker has loaded).
(function () {
  'use strict';
  var ls = window.leadscore;
  var $ = function (id) { return document.getElementById(id); };

  // ---- consent banner
  var banner = $('consent-banner');
  var decided = false;
  try { decided = !!localStorage.getItem('ls_consent'); } catch (e) {}
  if (banner && !decided) {
    banner.hidden = false;
    $('consent-accept').onclick = function () {
      window.leadscore.consent({ analytics: true, crm: true });
      banner.hidden = true;
    };
    $('consent-decline').onclick = function () {
      window.leadscore.consent({ analytics: false, crm: false });
      banner.hidden = true;
    };
  }

  // ---- Acme's backend (sign-in, the company's account): window.ACME_BACKEND, ?backend=URL (kept for
  // the tab), else the local stack's.
  var backend = window.ACME_BACKEND;
  var q = /[?&]backend=([^&]+)/.exec(location.search);
  try {
    if (q) sessionStorage.setItem('acme_backend', decodeURIComponent(q[1]));
    backend = backend || sessionStorage.getItem('acme_backend');
  } catch (e) {}
  backend = (backend || 'http://127.0.0.1:8791').replace(/\/$/, '');
  // The signed-in lead's company and the view token the backend gave for it (this tab only).
  var account = null;
  try { account = JSON.parse(sessionStorage.getItem('acme_account') || 'null'); } catch (e) {}

  // ---- debug panel (always on in the demo; ?debug=0 hides it)
  var panel = $('ls-debug');
  if (panel && /[?&]debug=0\b/.test(location.search)) panel.remove();
  else if (panel) {
    panel.innerHTML =
      '<div class="ls-debug-head"><span><span class="dot"></span>leadscore · live</span>' +
      '<button type="button" aria-label="Collapse">–</button></div>' +
      '<div class="ls-debug-body">' +
      '<div class="ls-row"><span class="ls-num" data-k="score">–</span><span class="ls-tier" data-k="tier">waiting</span>' +
      '<span class="ls-split" data-k="split"></span></div>' +
      '<div class="ls-account" data-k="account" hidden></div>' +
      '<div class="ls-conf"><span>confidence</span><span class="bar"><i data-k="confbar"></i></span><span data-k="conf">–</span></div>' +
      '<table><thead><tr><th>top factor</th><th>impact</th></tr></thead><tbody data-k="factors"></tbody></table>' +
      '<div class="ls-meta" data-k="meta">loading model…</div></div>';
    panel.querySelector('button').onclick = function () {
      panel.classList.toggle('collapsed');
      this.textContent = panel.classList.contains('collapsed') ? '+' : '–';
    };
    var k = function (n) { return panel.querySelector('[data-k="' + n + '"]'); };
    var fmt = function (v) {
      return typeof v !== 'number' ? String(v) : Math.abs(v) >= 100 || v === Math.round(v) ? String(Math.round(v * 10) / 10) : v.toFixed(2);
    };
    var esc = function (v) {
      return String(v).replace(/[&<>"]/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]; });
    };
    // "Traffic source: Email ↑": the card's label and value name (the raw feature and number when the
    // card has none), and which way the factor pushes the score.
    var factorText = function (f) {
      var name = f.label || f.feature.replace(/_/g, ' ');
      var value = f.display != null ? f.display : fmt(f.value);
      var text = f.text || name + ': ' + value; // the card's sentence ("2 webinars this month")
      return esc(text) + ' <span style="color:' + (f.impact >= 0 ? '#4ade80">↑' : '#f87171">↓') + '</span>';
    };
    var render = function (s) {
      k('score').textContent = s.ai_score;
      var t = k('tier');
      t.textContent = s.tier;
      t.className = 'ls-tier tier-' + s.tier;
      k('conf').textContent = s.score_confidence.toFixed(2);
      k('confbar').style.width = Math.round(s.score_confidence * 100) + '%';
      // Who the lead is (fit) and what they do (engagement), from the same explanation.
      if (s.fit && s.engagement) k('split').textContent = 'fit ' + s.fit.score + ' · engagement ' + s.engagement.score;
      var max = Math.max.apply(null, s.key_factors.map(function (f) { return Math.abs(f.impact); }).concat([0.001]));
      k('factors').innerHTML = s.key_factors.map(function (f) {
        var w = Math.round(Math.abs(f.impact) / max * 100);
        var cls = f.impact >= 0 ? 'pos' : 'neg';
        // one line per factor (the panel must not grow over the page); the full text is the title
        return '<tr><td style="overflow:hidden;text-overflow:ellipsis;max-width:210px" title="' + esc(f.feature + ' = ' + f.value) + '">' +
          factorText(f) + '</td><td class="' + cls + '">' +
          '<span class="impact"><i style="width:' + w + '%"></i></span>' + (f.impact >= 0 ? '+' : '−') + Math.abs(f.impact).toFixed(2) + '</td></tr>';
      }).join('');
      meta();
      showAccount();
    };
    // The company's account score, read by Acme's backend with its API token (never the page's): a
    // second after a score, at most every 3 s, once the member's new score has reached the account.
    var lastAccount = 0;
    var showAccount = function () {
      if (!account || Date.now() - lastAccount < 3000) return;
      lastAccount = Date.now();
      setTimeout(function () {
        fetch(backend + '/account?id=' + encodeURIComponent(account.id) + '&token=' + encodeURIComponent(account.token))
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (a) {
            if (!a) return;
            var el = k('account');
            el.hidden = false;
            el.textContent = 'account ' + a.account_id + ' · ' + a.ai_score + ' ' + a.tier + ' · ' +
              a.engaged_members + ' of ' + a.members + ' engaged' +
              (a.buyer_roles.length ? ' · ' + a.buyer_roles.join(', ') : '');
          })
          .catch(function () {});
      }, 1000);
    };
    var meta = function () {
      var l = window.leadscore;
      var i = l.info ? l.info() : null;
      var s = l.score();
      k('meta').textContent = !i ? 'loading model…' :
        'model ' + (s ? s.model_version : i.modelVersion) + ' · ' +
        (i.gpc ? 'GPC: nothing sent' : i.sending ? 'sending · ' + i.queued + ' queued' : 'on-device only');
    };
    ls.on('score', render);
    setInterval(function () { if (window.leadscore.info) meta(); }, 2000);
  }

  // ---- B2B touches: a webinar sign-up and a whitepaper download are named events a card can read.
  Array.prototype.forEach.call(document.querySelectorAll('[data-track]'), function (el) {
    el.addEventListener('click', function () {
      window.leadscore.track(el.getAttribute('data-track'), { asset: el.getAttribute('data-asset') || undefined });
      var done = el.getAttribute('data-done');
      if (done) el.textContent = done;
    });
  });

  // ---- demo-request form: no real submission; the email is a claim (unverified identify).
  var form = $('demo-request');
  if (form) {
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var f = form.elements;
      window.leadscore.identify(f.email.value.trim(), {
        company: f.company.value.trim(),
        company_size: f.company_size.value,
      });
      form.hidden = true;
      $('thanks').hidden = false;
    });
  }

  // ---- sign-in: Acme's own backend checks the password and signs the account id with a secret
  // only it and the worker hold; the page passes that signature on, so this identify is verified.
  // Backend address: window.ACME_BACKEND, ?backend=URL (kept for the tab), else the local stack's.
  var signin = $('sign-in');
  if (signin) {
    var status = $('sign-in-status');
    var say = function (text, ok) { status.textContent = text; status.className = 'signin-status ' + (ok ? 'ok' : 'err'); };
    signin.addEventListener('submit', function (e) {
      e.preventDefault();
      var f = signin.elements;
      var button = signin.querySelector('button');
      button.disabled = true;
      fetch(backend + '/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: f.email.value, password: f.password.value }),
      }).then(function (r) {
        return r.json().then(function (b) { return { ok: r.ok, body: b }; });
      }).then(function (r) {
        if (!r.ok) throw new Error(r.body && r.body.error ? r.body.error.message : 'sign-in failed');
        window.leadscore.identify(r.body.lead_id, r.body.traits, { signature: r.body.lead_signature });
        // The company's buying group: signed by the backend too (a page cannot claim a company).
        if (r.body.account_id) {
          window.leadscore.group(r.body.account_id, r.body.account_traits, { signature: r.body.account_signature });
          account = { id: r.body.account_id, token: r.body.account_view_token };
          try { sessionStorage.setItem('acme_account', JSON.stringify(account)); } catch (e) {}
        }
        window.leadscore.flush && window.leadscore.flush();
        f.password.value = '';
        say('Signed in as ' + r.body.lead_id + ' (verified by our server).', true);
      }).catch(function (err) {
        say(err && err.message && !/fetch/i.test(err.message) ? err.message : 'The sign-in server is not reachable.', false);
      }).then(function () { button.disabled = false; });
    });
  }
})();
