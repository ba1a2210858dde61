// leadscore snippet (source; `node www/build.mjs` minifies it to target/www/ls/snippet.min.js).
//
// Paste the minified text inline in <head>, followed by your init call:
//
//   <script>
//     …snippet.min.js…
//     leadscore.init({ siteKey: "…", endpoint: "https://…", src: "https://…/ls/tracker.js" });
//   </script>
//
// What it does, synchronously and in well under 1 KB:
// - defines `window.leadscore` as a queue: every call made before the tracker has loaded is recorded
//   with its time and replayed, in order, by the tracker (Segment analytics.js style); a reference to
//   this stub kept by page code keeps working after load (the tracker forwards its methods);
// - injects a <style> that hides personalised elements (`data-leadscore-show`, `data-leadscore-min-score`)
//   until the tracker has decided on them, so no visitor sees content meant for another tier;
// - puts the tier saved on the last visit on <html> (`ls-tier-hot|warm|cold`), so a returning hot
//   visitor's tier-targeted content shows at once instead of after the tracker loads;
// - on the first `init`, loads the tracker (an ES module) asynchronously.
// Pasting it twice is harmless: the second copy sees the first and does nothing (its `init` is
// queued and ignored by the tracker).
(function (w, d) {
  var ls = (w.leadscore = w.leadscore || []);
  // Already set up by an earlier copy, or the tracker is already running.
  if (ls.invoked || !ls.push) return;
  ls.invoked = 1;
  // Read by the tracker (leadscore.info().snippetVersion): which loader a page carries.
  ls.SNIPPET_VERSION = '2';
  var h = d.documentElement;
  // Each call is stamped when it is made (c.t), so a queued page view or identify keeps its own
  // time when the tracker replays it.
  var stub = function (m) {
    return function () {
      var c = [m].concat([].slice.call(arguments));
      c.t = +new Date();
      ls.push(c);
      return ls;
    };
  };
  'page track identify group on off consent flush reset'.split(' ').forEach(function (m) {
    ls[m] = stub(m);
  });
  // No score is known before the tracker has computed one.
  ls.score = function () {
    return null;
  };
  ls.init = function (o) {
    ls.push(['init', o]);
    if (!ls.loading) {
      ls.loading = 1;
      var s = d.createElement('script');
      s.type = 'module';
      s.async = true;
      s.src = (o && o.src) || '/ls/tracker.js';
      try {
        performance.mark('leadscore:snippet');
      } catch (e) {}
      (d.head || h).appendChild(s);
    }
    return ls;
  };
  // Hidden unless: the tracker marked it on (data-ls=on), or (before the tracker has run) the saved
  // tier class on <html> matches one of its tiers. data-ls=off always hides.
  var st = d.createElement('style');
  var sel = '[data-leadscore-show]:not([data-ls=on])';
  'hot warm cold'.split(' ').forEach(function (t) {
    sel += ':not(.ls-tier-' + t + ' [data-leadscore-show~=' + t + '])';
  });
  st.textContent =
    sel + ',[data-leadscore-min-score]:not([data-ls=on]),[data-ls=off]{display:none!important}';
  (d.head || h).appendChild(st);
  try {
    var t = localStorage.getItem('ls_tier');
    if (/^(hot|warm|cold)$/.test(t)) h.classList.add('ls-tier-' + t);
  } catch (e) {}
})(window, document);
