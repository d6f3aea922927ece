// While a code waits at the counter, ask every few seconds whether it has been handed
// over (or cancelled, or expired) and reload the page when it has: the volunteer sees
// "collected" without touching the phone.
(function () {
  "use strict";
  var me = document.getElementById("redemption-watch");
  if (!me || !window.fetch) { return; }
  var url = me.getAttribute("data-status-url");
  var shown = me.getAttribute("data-status");
  var every = 3000;

  function ask() {
    if (document.hidden) { window.setTimeout(ask, every); return; }
    window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.status && body.status !== shown) {
          window.location.reload();
          return;
        }
        window.setTimeout(ask, every);
      })
      .catch(function () { window.setTimeout(ask, every * 2); });
  }
  window.setTimeout(ask, every);
})();
