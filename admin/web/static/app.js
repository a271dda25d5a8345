// passgate admin page: optional enhancements. Every page works without it.
// - Auto-refresh (Status, Connections, Events): when ticked, the page's main
//   area is refetched every few seconds; the choice is remembered.
// - A confirmation before deleting a port forwarding rule.
(function () {
  "use strict";
  var main = document.getElementById("main");

  document.addEventListener("submit", function (ev) {
    var b = ev.submitter;
    if (b && b.dataset.confirm && !window.confirm(b.dataset.confirm)) {
      ev.preventDefault();
    }
  });

  if (!main || !main.dataset.refresh) {
    return;
  }
  var period = parseInt(main.dataset.refresh, 10) * 1000 || 5000;
  var key = "passgate.autorefresh";
  var timer = null;

  function box() { return document.getElementById("auto-refresh"); }

  function busy() {
    var a = document.activeElement;
    return a && main.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName) && a.id !== "auto-refresh";
  }

  function refresh() {
    if (busy()) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || !r.ok) { window.location.reload(); return null; }
        return r.text();
      })
      .then(function (html) {
        if (html === null || busy()) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        if (!fresh) { return; }
        main.innerHTML = fresh.innerHTML;
        setup();
      })
      .catch(function () { /* keep the page as it is; try again next time */ });
  }

  function setup() {
    var b = box();
    if (!b) { return; }
    b.parentElement.hidden = false;
    b.checked = window.localStorage.getItem(key) === "on";
    b.onchange = function () {
      window.localStorage.setItem(key, b.checked ? "on" : "off");
      schedule();
    };
    schedule();
  }

  function schedule() {
    if (timer) { window.clearInterval(timer); timer = null; }
    var b = box();
    if (b && b.checked) { timer = window.setInterval(refresh, period); }
  }

  setup();
})();
